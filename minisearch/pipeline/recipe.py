"""Recipes: a YAML file that names the stages of a run, in order, and their settings.

    name: demo                    # the run folder is runs/demo unless `out:` says otherwise
    seed: 0                       # every stage's seed unless the stage sets its own
    report_to: [tensorboard]      # live curves (minisearch.steplog); default: tensorboard if installed
    stages:
      world:  {kind: toyworld, size: 2000}   # the key is the stage's folder; kind defaults to the key
      sft:    {data: traj, model: warmup, lr: 5.0e-3}
      qa-sft: {kind: sft, data: qa-traj, adapter: sft/adapter}

A stage's keys are its config's fields (`minisearch.pipeline.stages.KINDS`), nested configs as nested
maps (`rollout: {topk: 3}`); `out` is the stage's folder. A path whose first part names a
stage earlier in the recipe lives in that stage's folder (`ramp/dev.jsonl`). Keys are
strict: an unknown one is an error that names the nearest valid key. `--set sft.lr=1e-3`
changes one value on the command line (the value is read as YAML).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from minisearch.errors import UserError, nearest
from minisearch.settings import default_of, renamed

TOP_KEYS = ("name", "out", "seed", "report_to", "stages")


def read_recipe(path: str | Path, sets: list[str] = ()) -> dict:
    """The recipe at `path` with the `key=value` overrides applied, checked at the top level."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no recipe at {path}; the shipped ones are in recipes/ (demo.yaml, qwen1.5b.yaml)")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(recipe, dict) or not isinstance(recipe.get("stages"), dict) or not recipe["stages"]:
        raise UserError(f"{path}: a recipe is a map with a non-empty `stages:` map (see recipes/demo.yaml)")
    for item in sets:
        apply_set(recipe, item)
    for key in recipe:
        if key not in TOP_KEYS:
            raise UserError(f"{path}: unknown top-level key {key!r}{nearest(key, TOP_KEYS)}; "
                            f"valid: {', '.join(TOP_KEYS)}")
    recipe.setdefault("name", path.stem)
    recipe.setdefault("out", f"runs/{recipe['name']}")
    for name, stage in recipe["stages"].items():
        if stage is not None and not isinstance(stage, dict):
            raise UserError(f"{path}: stage {name!r} must be a map of settings, got {stage!r}")
    return recipe


def apply_set(recipe: dict, item: str) -> None:
    """Apply one `--set a.b.c=value`: a top-level key, or `STAGE.key[.key...]`."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set takes key=value (e.g. sft.lr=1e-3), got {item!r}")
    value = yaml.safe_load(raw) if raw.strip() else None
    parts = key.strip().split(".")
    if len(parts) == 1:
        recipe[parts[0]] = value
        return
    stages = recipe["stages"]
    if parts[0] not in stages:
        raise UserError(f"--set {item}: no stage {parts[0]!r} in this recipe{nearest(parts[0], stages)}; "
                        f"stages: {', '.join(stages)}")
    node = stages[parts[0]] = stages[parts[0]] or {}
    for part in parts[1:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {item}: {part!r} is a value, not a map")
    node[parts[-1]] = value


def build(cls, values: dict, where: str, fixed: dict | None = None, base=None):
    """A `cls` dataclass from a recipe map: unknown keys name the nearest field, nested
    dataclass fields are built from nested maps over the parent's default for them (eval's
    greedy rollout stays greedy when a recipe sets only its top-k), `fixed` fields come from
    the runner."""
    fixed = fixed or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = dict(fixed)
    for key, value in (values or {}).items():
        if key not in fields and renamed(cls, key):
            raise UserError(f"{where}: {key!r} is now {renamed(cls, key)!r} (rename the key)")
        if key not in fields or key in fixed:
            valid = [k for k in fields if k not in fixed]
            why = "is set by the runner" if key in fixed else "is not a setting of this stage"
            raise UserError(f"{where}: {key!r} {why}{nearest(key, valid)}; valid keys: {', '.join(valid)}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise UserError(f"{where}.{key} is a map of settings, got {value!r}")
            value = build(hints[key], value, f"{where}.{key}", base=_default(fields[key]))
        kwargs[key] = coerce(value, hints[key], f"{where}.{key}")
    missing = [f.name for f in fields.values() if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing and base is None:
        raise UserError(f"{where}: missing required key(s) {', '.join(missing)}")
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: {e}") from e


def _default(f: dataclasses.Field):
    """A nested config field's default instance (None when it has none to build on)."""
    value = default_of(f)
    return value if dataclasses.is_dataclass(value) else None


def coerce(value, hint, where: str):
    """`value` as the field's plain type (int, float, bool, str, or None where allowed): YAML
    reads 5e-3 as a string and 1 where 1.0 was meant.

    >>> coerce("5e-3", float, "sft.lr"), coerce(2, float | None, "x"), coerce(None, str | None, "y")
    (0.005, 2.0, None)
    """
    args = typing.get_args(hint)
    if value is None and (type(None) in args or hint is type(None)):
        return None
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    plain = [a for a in args if a is not type(None)] if union else [hint]
    if len(plain) > 1:  # the first type the value fits: str | list[str] takes "x" and ["x", "y"]
        for member in plain:
            try:
                return coerce(value, member, where)
            except UserError:
                pass
        raise UserError(f"{where} takes a {' or '.join(_what(m) for m in plain)}, got {value!r}")
    kind = typing.get_origin(plain[0]) or plain[0]  # list[float] -> list
    try:
        if kind is bool and not isinstance(value, bool):
            raise ValueError
        if kind is float and not isinstance(value, bool):
            return float(value)
        if kind is int and not isinstance(value, bool):
            if float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind is str:
            if not isinstance(value, (str, int, float)):
                raise TypeError
            return str(value)
        if kind in (dict, list) and not isinstance(value, kind):
            raise TypeError
    except (TypeError, ValueError):
        raise UserError(f"{where} takes a {_what(kind)}, got {value!r}") from None
    return value


def _what(kind) -> str:
    kind = typing.get_origin(kind) or kind
    return {dict: "map", list: "list"}.get(kind, kind.__name__)
