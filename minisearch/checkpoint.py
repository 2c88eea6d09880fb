"""A training loop's state in one file, so a killed run resumes where it was.

    save_state(path, model, optimizer, rng, step=12, curriculum={...})
    extra = load_state(path, model, optimizer, rng)     # {"step": 12, "curriculum": {...}}

What is saved: the trainable weights only (a LoRA adapter, small), the optimiser, Python's
`rng`, torch's CPU and CUDA RNG states, and any extra JSON-able values. The file is written
beside its final name and renamed, so a kill mid-write leaves the previous checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path

from minisearch.errors import UserError


def save_state(path: Path, model, optimizer, rng: random.Random, **extra) -> None:
    import torch

    state = {"extra": extra, "rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
             "optimizer": optimizer.state_dict(),
             "weights": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}}
    part = Path(path).with_suffix(".part")
    torch.save(state, part)
    part.replace(path)


def load_state(path: Path, model, optimizer, rng: random.Random) -> dict:
    """Restore weights, optimiser and RNGs from `path`; returns the extra values."""
    import torch

    state = torch.load(path, weights_only=False)
    missing = set(state["weights"]) - {n for n, _ in model.named_parameters()}
    if missing:
        raise UserError(f"{path} does not match this model (e.g. {sorted(missing)[0]}); delete it to start over")
    model.load_state_dict(state["weights"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    rng.setstate(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["extra"]
