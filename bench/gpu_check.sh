#!/usr/bin/env bash
# What a lent GPU machine can show of the GPU path, as one prepared run:
#     bash bench/gpu_check.sh [all|memory|unsloth]      (default all)
# prints the GPU and the library versions, installs any wheels in bench/wheels/ without an index,
# then
#   memory   `bench/memory.py --device cuda`: 28 real layers, bf16 activations, the base in nf4 when
#            bitsandbytes imports (else bf16, and it says so), max_memory_allocated per case, seconds
#            per DAPO update and per SFT step at the recipes' full sizes (under 8 minutes on an H200);
#   unsloth  `bench/unsloth_check.py`: Unsloth's 4-bit load of a random model at Qwen2.5-1.5B's
#            shapes, one SFT step and one DAPO update sampled with HF generate (no vLLM: its wheel
#            is far over what travels), the update's on-policy ratio error; when Unsloth does not
#            import, it says what it skipped and why. A few minutes (not yet timed on a GPU).
# The JSON of each lands in $OUT when set. `all` can take longer than one 10-minute device call
# (the two parts' timeouts are 460 and 420 s): on a lent machine run the parts as two calls.
#
# The device machine has torch, transformers, peft and accelerate, but no package registry and no
# model hub (the models are random, built in code). Wheels travel with the working tree (64 MiB a
# call at most; bench/wheels/ need not be committed). bitsandbytes 0.50.2's wheel is 43.1 MB:
#     pip download --no-deps bitsandbytes==0.50.2 -d bench/wheels
# Unsloth's check needs unsloth and unsloth_zoo and the small packages they import, beside
# bitsandbytes; together they are over one call, but a machine keeps what the last call installed
# while it stays warm, so two calls back to back stage them: the first with bitsandbytes alone in
# bench/wheels (`bash bench/gpu_check.sh memory`), the second with the rest:
#     pip download --no-deps unsloth==2026.10.7 unsloth_zoo==2026.10.9 trl==1.15.0 "datasets<5" \
#         tyro msgspec structlog nest-asyncio cut_cross_entropy torchao hf_transfer diffusers dill \
#         xxhash multiprocess -d bench/wheels
# (then `bash bench/gpu_check.sh unsloth`). Whether Unsloth imports on that machine's torch 2.11
# without xformers, and whether this list is all it imports, is unchecked: the check prints the
# import error when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
part=${1:-all}
case "$part" in all|memory|unsloth) ;; *) echo "usage: bash bench/gpu_check.sh [all|memory|unsloth]" >&2; exit 2 ;; esac

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv || echo "nvidia-smi failed"
"$PY" - <<'EOF'
import peft, torch, transformers
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, peft {peft.__version__}")
if not torch.cuda.is_available():
    raise SystemExit("torch sees no CUDA device")
free, total = torch.cuda.mem_get_info()
p = torch.cuda.get_device_properties(0)
print(f"{p.name}: {total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free, capability {p.major}.{p.minor}, "
      f"{p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}")
EOF

shopt -s nullglob
wheels=(bench/wheels/*.whl)
if ((${#wheels[@]})); then
    echo "== installing ${wheels[*]} (--no-index)"
    "$PY" -m pip install -q --no-index --no-deps "${wheels[@]}" || echo "the wheel install failed: the base stays bf16"
fi
"$PY" -c "import bitsandbytes as b; print('bitsandbytes', b.__version__)" 2>/dev/null \
    || echo "bitsandbytes does not import: the base stays bf16 (the table's 'measured' rows then hold bf16 weights)"

if [[ $part != unsloth ]]; then
    echo "== bench/memory.py --device cuda"
    save=()
    [[ -n "${OUT:-}" ]] && save=(--save "$OUT/memory-cuda.json")
    timeout 460 "$PY" bench/memory.py --device cuda "${save[@]}"
fi

if [[ $part != memory ]]; then
    echo "== bench/unsloth_check.py (Unsloth 4-bit, one SFT step, one DAPO update with HF sampling)"
    # Imported in a child first: Unsloth raises at import for many reasons (no GPU, a missing
    # package, a torch it was not built for), and the message is what this run must show.
    if why=$("$PY" -c "import unsloth, unsloth_zoo, bitsandbytes" 2>&1); then
        save=()
        [[ -n "${OUT:-}" ]] && save=(--save "$OUT/unsloth-check.json")
        timeout 420 "$PY" bench/unsloth_check.py "${save[@]}"
    else
        echo "skipped bench/unsloth_check.py: unsloth, unsloth_zoo or bitsandbytes does not import here."
        echo "What failed (last lines):"
        printf '%s\n' "$why" | tail -n 5 | sed 's/^/    /'
        echo "Stage the wheels listed at the top of this script in bench/wheels/ (two calls back to back)."
    fi
fi
