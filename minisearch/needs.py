"""What a stage will import or reach, as data the preflight checks before any stage runs.

A night's GPU run must not stop at its last stage for want of a package that was missing from
the start. So each stage kind says what it needs (`pipeline.preflight` lists them from the
stage's config, with helpers next to the code that imports or reaches each thing), and the
preflight checks every need of every stage at once and refuses with all that are missing,
each with the command or step that provides it. The kinds of need:

    package   an import name: found by importlib's `find_spec` (nothing is imported)
    model     a model folder, or a Hugging Face hub id: in the local hub cache, or the hub reachable
    dataset   a Hugging Face hub dataset: the hub reachable
    file      a file or folder: on disk, or written by an earlier stage of the run
    gpu       a CUDA GPU, seen by a CUDA build of torch

    >>> Need("package", "fanoutqa", "stage eval, set fanoutqa", HF_EXTRA).kind
    'package'
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

HF_EXTRA = "pip install -e '.[hf]' (make install-gpu installs it too)"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name, exactly one slash
KINDS = ("package", "model", "dataset", "file", "gpu")


@dataclass(frozen=True)
class Need:
    kind: str   # one of KINDS
    name: str   # import name, model folder or hub id, dataset, path ("" for the gpu)
    why: str    # who needs it: "stage eval, set fanoutqa"
    fix: str = ""  # the command or step that provides it (models and datasets: said by the check)


def package(module: str, why: str, fix: str) -> Need:
    return Need("package", module, why, fix)


def model(spec: str, why: str) -> Need:
    return Need("model", str(spec), why)


def file(path: str, why: str, fix: str) -> Need:
    return Need("file", str(path), why, fix)


def unmet(needs: list[Need], made: Callable[[str], bool] = lambda _: False) -> list[str]:
    """One line per missing thing: what, for whom (the needs of one thing merged), and how to
    get it; `made(path)` is true for what an earlier stage of the run writes."""
    merged: dict[tuple[str, str], list[Need]] = {}
    for need in needs:
        merged.setdefault((need.kind, need.name), []).append(need)
    found: dict[tuple[str, str, str], list[str]] = {}  # packages with the same whys and fix share a line
    for (kind, name), same in merged.items():
        problem = CHECKS[kind](name, made)
        if problem:
            what, how = problem
            why = "; ".join(dict.fromkeys(n.why for n in same))
            found.setdefault((why, how or same[0].fix, "" if kind == "package" else name), []).append(what)
    lines = []
    for (why, how, _), whats in found.items():
        what = whats[0] if len(whats) == 1 else "the packages " + ", ".join(w.split()[-1] for w in whats)
        lines.append(f"{what} (for {why})" + (f": {how}" if how else ""))
    return lines


# Each check: None when the need is met, else (what is missing, how to get it or "" for the need's own fix).

def _package(module: str, made) -> tuple[str, str] | None:
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install of the package itself
        found = False
    return None if found else (f"the package {module}", "")


def _file(path: str, made) -> tuple[str, str] | None:
    return None if made(path) or Path(path).exists() else (f"{path} (no such file or folder)", "")


def _model(spec: str, made) -> tuple[str, str] | None:
    if made(spec) or Path(spec).exists():
        return None
    if not HUB_ID.fullmatch(spec):
        return f"a model at {spec} (no such folder, and not a Hugging Face id)", "give a model folder or a hub id"
    if in_hub_cache(spec):
        return None
    reason = hub_unreachable()
    if reason is None:
        return None
    return (f"the model {spec} from the Hugging Face hub, which {reason}",
            f"connect this machine, or download it where there is internet (`hf download {spec}`) and copy the "
            f"hub cache ({hub_cache()}) here, or give a model folder")


def _dataset(name: str, made) -> tuple[str, str] | None:
    reason = hub_unreachable()
    if reason is None:
        return None
    return f"the dataset {name} from the Hugging Face hub, which {reason}", ""


def _gpu(name: str, made) -> tuple[str, str] | None:
    try:
        import torch
    except ImportError:
        return "a CUDA GPU, and torch to use it", "make install-gpu"
    if torch.version.cuda is None:
        return (f"a CUDA GPU (torch {torch.__version__} here is a CPU build)",
                "pip uninstall torch, then make install-gpu (torch 2.14.0 with CUDA 13); or plan for the CPU "
                "with --set STAGE.model_backend=cpu")
    if not torch.cuda.is_available():
        return (f"a CUDA GPU (none is visible to torch {torch.__version__}, CUDA {torch.version.cuda})",
                "the gpu backend needs one and an NVIDIA driver >= 580; make demo runs on a CPU, or plan for it "
                "with --set STAGE.model_backend=cpu")
    return None


CHECKS = {"package": _package, "model": _model, "dataset": _dataset, "file": _file, "gpu": _gpu}


def hub_cache() -> Path:
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE)


def in_hub_cache(repo_id: str) -> bool:
    """The model's config is in the local hub cache (transformers then loads it offline)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here (None: it can): offline mode set,
    or no connection to its host within 5 s."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(key, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{key} forbids reaching"
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    return _unreachable(host)


@functools.cache
def _unreachable(host: str) -> str | None:
    import socket

    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as e:
        return f"cannot be reached at {host} ({type(e).__name__}: {e})"
    return None
