"""Saved LoRA adapters: read one, check it fits the model, and start a fresh one.

peft loads an adapter's tensors with `strict=False`: an adapter trained on another base or at
another rank loads as nothing, and the run samples the bare model without a word. Both
backends read adapters through `check_adapter`, which compares the saved tensors with the
ones the model expects (names and shapes) and refuses with the keys that differ.
"""

from __future__ import annotations

from pathlib import Path

from minisearch.errors import UserError

WEIGHTS = "adapter_model.safetensors"


def read_adapter(folder: str | Path) -> dict:
    """The saved tensors of the adapter at `folder` (peft's layout)."""
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise UserError(f"no adapter at {folder} ({WEIGHTS} missing); give the folder a stage wrote, "
                        "e.g. runs/NAME/sft/adapter")
    return load_file(str(path))


def check_adapter(model, saved: dict, folder: str | Path) -> None:
    """Raise if `saved` (from `read_adapter`) does not match the adapter `model` carries."""
    from peft import get_peft_model_state_dict

    expected = get_peft_model_state_dict(model)
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    shapes = sorted(k for k in set(saved) & set(expected) if tuple(saved[k].shape) != tuple(expected[k].shape))
    if not (missing or unexpected or shapes):
        return
    parts = [f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})"
             for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes))
             if keys]
    raise UserError(f"the adapter at {folder} does not fit this model: {'; '.join(parts)}. It was trained on "
                    "another base model or at another rank; pass the base model it was trained on")


def load_into(model, folder: str | Path) -> None:
    """Copy the adapter at `folder` into `model`'s live LoRA (same base, same rank), checked."""
    from peft import set_peft_model_state_dict

    saved = read_adapter(folder)
    check_adapter(model, saved, folder)
    set_peft_model_state_dict(model, saved)


def saved_rank(folder: str | Path) -> int | None:
    """The LoRA rank in the adapter's config, if it says."""
    import json

    path = Path(folder) / "adapter_config.json"
    return json.loads(path.read_text()).get("r") if path.is_file() else None


def reset_lora(model, seed: int) -> None:
    """Every LoRA layer back to peft's initial state (A random from `seed`, B zero)."""
    import torch
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name in module.lora_A:
                module.reset_lora_parameters(name, True)
