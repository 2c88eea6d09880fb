#!/usr/bin/env bash
# The memory bench on a lent GPU machine, as one prepared run (under 8 minutes on an H200):
#     bash bench/gpu_check.sh
# prints the GPU and the library versions, installs any wheels in bench/wheels/ without an index,
# then runs `bench/memory.py --device cuda`: 28 real layers, bf16 activations, the base in nf4 when
# bitsandbytes imports (else bf16, and it says so), max_memory_allocated per case, seconds per DAPO
# update and per SFT step at the recipes' full sizes; one table, and the JSON in $OUT when set.
#
# The device machine has torch, transformers, peft and accelerate, but no package registry and no
# model hub (the model is random, built in code). bitsandbytes travels with the working tree as a
# wheel; fetch it here first:
#     pip download --no-deps bitsandbytes==0.50.2 -d bench/wheels
#     du -m bench/wheels      # 0.50.2's manylinux x86_64 wheel is 43.1 MB (41 MiB): under the 64 MiB limit
# (it needs numpy and packaging, which torch's machines have; bench/wheels/ need not be committed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

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

echo "== bench/memory.py --device cuda"
save=()
[[ -n "${OUT:-}" ]] && save=(--save "$OUT/memory-cuda.json")
timeout 460 "$PY" bench/memory.py --device cuda "${save[@]}"
