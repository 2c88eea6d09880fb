"""A recipe's stages: each stage kind's module and config class, and the stages of a recipe or a
run folder with their configs built and checked (nothing runs). The runner, the preflight and the
plan all start from here.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

from minisearch.errors import UserError, nearest
from minisearch.pipeline.recipe import build, read_recipe
from minisearch.settings import path_fields

# kind -> (module, config class); the module's run(cfg, echo) does the stage's work. One name per
# stage: the kind is also the stage's command (`minisearch KIND`, made from this table by
# cli/stages.py) and a part of its module's name.
KINDS = {
    "toyworld": ("minisearch.data.toyworld", "WorldConfig"),
    "corpus": ("minisearch.data.corpus", "CorpusConfig"),
    "index": ("minisearch.data.index", "IndexConfig"),
    "init": ("minisearch.tiny.init", "InitConfig"),
    "warmup": ("minisearch.tiny.warmup", "WarmupConfig"),
    "pretrained": ("minisearch.pretrained", "PretrainedConfig"),
    "ramp": ("minisearch.ramp.tasks", "RampConfig"),
    "traj": ("minisearch.train.traj", "TrajConfig"),
    "sft": ("minisearch.train.sft", "SftConfig"),
    "dapo": ("minisearch.train.dapo", "DapoConfig"),
    "qaset": ("minisearch.eval.qaset", "QaSetConfig"),
    "eval": ("minisearch.eval.stage", "EvalConfig"),
}
# Kinds renamed so that kind, command and module agree: old kind -> new (an error, not an alias).
RENAMED_KINDS = {"world": "toyworld"}


@dataclasses.dataclass
class Stage:
    name: str
    kind: str
    cfg: object
    module: object


def plan(recipe: dict) -> tuple[Path, list[Stage]]:
    """The run folder and its stages with their configs built and checked (nothing runs)."""
    root = Path(recipe["out"])
    stages: list[Stage] = []
    for name, values in recipe["stages"].items():
        values = dict(values or {})
        kind = values.pop("kind", name)
        if kind in RENAMED_KINDS:
            new = RENAMED_KINDS[kind]
            raise UserError(f"recipe stage {name!r}: kind {kind!r} is now {new!r} (write `kind: {new}` in the stage)")
        if kind not in KINDS:
            raise UserError(f"recipe stage {name!r}: unknown kind {kind!r}{nearest(kind, KINDS)}; "
                            f"kinds: {', '.join(KINDS)} (set `kind:` when the stage's name is not one)")
        module = importlib.import_module(KINDS[kind][0])
        cls = getattr(module, KINDS[kind][1])
        earlier = {s.name for s in stages}
        paths = path_fields(cls)  # a path that starts with an earlier stage's name lives in its folder
        values = {k: _resolve(v, root, earlier) if k in paths else v for k, v in values.items()}
        if "seed" in {f.name for f in dataclasses.fields(cls)} and "seed" in recipe:
            values.setdefault("seed", recipe["seed"])
        stages.append(Stage(name, kind, build(cls, values, f"stages.{name}", fixed={"out": str(root / name)}),
                            module))
    return root, stages


def run_stages(root: str | Path) -> list[Stage]:
    """The stages of the run folder at `root`, built from the recipe it holds, wherever it lies."""
    root = Path(root)
    if not (root / "recipe.yaml").is_file():
        raise UserError(f"{root}: not a run folder (no recipe.yaml); make one with `minisearch run RECIPE`")
    recipe = read_recipe(root / "recipe.yaml")
    recipe["out"] = str(root)
    return plan(recipe)[1]


def _resolve(value, root: Path, earlier: set[str]):
    if isinstance(value, dict):
        return {k: _resolve(v, root, earlier) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, earlier) for v in value]
    if isinstance(value, str) and value.split("/")[0] in earlier:
        return str(root / value)
    return value
