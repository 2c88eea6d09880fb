"""Stage settings: the one place a setting's default, help, valid values and checks live.

Every stage config is a dataclass of `setting(...)` fields over `Settings`; the recipe
reader (`pipeline.recipe.build`) and the command line (`cli.options`) both read them, so a
recipe key, a `--set` and a `--flag` are the same setting with the same default and the
same check:

    @dataclass
    class RampConfig(Settings):
        corpus: str = setting(help="Passages to mask.", path=True, arg=True)
        recover: str = setting("span", help="...", choices=("span", "title"))

Metadata: `help` (the flag's help), `choices` (valid values), `min` (lowest valid number),
`path` (a path a recipe may write as an earlier stage's name), `arg` (a positional argument
on the command line), `flag` (the command line's name when it is not `--field-name`), `was`
(the setting's old name: a recipe key or flag of that name is an error that names this one).
Checks run in `__post_init__`, so building a config is checking it: a recipe's bad value
fails when `minisearch run` plans its stages, before any stage runs.
"""

from __future__ import annotations

import copy
import dataclasses

from minisearch.errors import UserError


class SettingError(UserError, ValueError):
    """A setting with a value it cannot take (a UserError: the CLI prints it without a traceback)."""


def setting(default=dataclasses.MISSING, *, help: str = "", choices=None, min=None, path: bool = False,
            arg: bool = False, flag: str | None = None, was: str | None = None):
    """A dataclass field with its help and checks; a list or dict default is copied per instance."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "min": min, "path": path, "arg": arg,
            "flag": flag, "was": was}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Settings:
    """Base of the stage configs: checks every field against its metadata, then `validate`."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            choices = meta.get("choices")
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if choices and v is not None and v not in choices:
                    valid = ", ".join(map(str, choices))
                    raise SettingError(f"{f.name}={v!r} is not one of {valid}")
            low = meta.get("min")
            if low is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
                raise SettingError(f"{f.name}={value}: it must be at least {low}")
        self.validate()

    def validate(self) -> None:
        """Checks across fields (one field needs another); a subclass raises SettingError."""


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


def path_fields(cls) -> set[str]:
    """The fields of `cls` that hold a path (a recipe may write them as `stage/file`)."""
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("path")}


def renamed(cls, key: str) -> str | None:
    """The field of `cls` that was called `key` before a rename (None when none was)."""
    return next((f.name for f in dataclasses.fields(cls) if f.metadata.get("was") == key), None)


def default_of(f: dataclasses.Field):
    """A field's default value (MISSING when it has none)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default
