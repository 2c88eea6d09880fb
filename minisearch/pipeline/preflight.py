"""Before a run: the machine against the recipe's plan (minisearch.pipeline.plan)."""

from __future__ import annotations

from pathlib import Path

from minisearch.errors import UserError
from minisearch.pipeline.plan import GB, Planner


def preflight(path: str, sets: list[str], hardware: str | None = None, echo=print) -> None:
    """Before a run: the machine against the plan. A recipe with GPU stages needs a CUDA GPU
    with the plan's VRAM; every recipe needs the plan's peak RAM and its disk free. Refuses
    (UserError) with everything that is missing, before any stage starts."""
    import shutil

    import psutil

    from minisearch.pipeline.recipe import read_recipe
    from minisearch.pipeline.runner import plan

    recipe = read_recipe(path, sets)
    root, stages = plan(recipe)
    gpu = any(getattr(s.cfg, "backend", "cpu") == "gpu" for s in stages)
    missing, vram = [], 0.0
    if gpu:
        try:
            import torch

            if torch.cuda.is_available():
                vram = torch.cuda.get_device_properties(0).total_memory / GB
        except ImportError:
            pass
        if not vram:
            missing.append("a CUDA GPU (the recipe's stages use backend: gpu; `make install-gpu`, or plan "
                           "for the CPU with --set STAGE.backend=cpu)")
    hardware = hardware or ("cpu" if not gpu else "rtx4090" if vram >= 20 else "rtx3060-12gb")
    costs = Planner(hardware, stages).plan()
    need_vram = max(c.vram_gb for c in costs)
    need_ram = max(c.ram_gb for c in costs)
    need_disk = sum(c.disk_gb for c in costs)
    if gpu and vram and vram < need_vram:
        missing.append(f"{need_vram:.1f} GB of GPU memory (this GPU has {vram:.1f} GB; the 12 GB recipe is "
                       "recipes/qwen1.5b-12gb.yaml)")
    ram = psutil.virtual_memory().total / GB
    if ram < need_ram:
        missing.append(f"{need_ram:.1f} GB of RAM (this machine has {ram:.1f} GB)")
    where = Path(root).resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free / GB
    done = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file()) / GB if Path(root).exists() else 0
    if free + done < need_disk:
        missing.append(f"{need_disk:.1f} GB of disk at {where} ({free:.1f} GB free)")
    if missing:
        raise UserError("preflight: this machine lacks " + "; ".join(missing)
                        + f". See the plan: minisearch run {path} --plan --hardware {hardware}")
    if gpu:
        echo(f"preflight: GPU {vram:.0f} GB (plan {need_vram:.1f}), RAM {ram:.0f} GB (plan {need_ram:.1f}), "
             f"disk {free:.0f} GB free (plan {need_disk:.1f}): ok")
