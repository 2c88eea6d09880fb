"""Command-line options made from a stage config's fields, so the CLI and the recipes share
one source for every setting: its name, default, help and valid values (`minisearch.settings`).

    @click.command()
    @settings_options(RampConfig, short={"topk": "-k"})
    @user_errors
    def ramp(**options):
        run(settings_from(RampConfig, options))

Names: a field `dev_fraction` is `--dev-fraction` (or its `flag` metadata); a nested config's
field keeps its own name (`rollout.max_turns` is `--max-turns`) unless another field of the
command has that name, then it takes its parent's (`rollout.group` beside DAPO's `group` is
`--rollout-group`). Values: a bool is `--x/--no-x`; a list is comma-separated
(`--k-weights 0.4,0.3,0.2,0.1`); a map is repeated `NAME=VALUE` pairs added to its default;
an `arg` field is a positional argument; a setting's old name (`was`) stays as a hidden flag that
fails with the new one. Flags left out keep the config's default, because
only the flags given reach `recipe.build`, the recipes' own reader and checker.
"""

from __future__ import annotations

import dataclasses
import typing

import click
from click.core import ParameterSource

from minisearch.errors import UserError
from minisearch.pipeline.recipe import build
from minisearch.settings import default_of, help_of


@dataclasses.dataclass
class Leaf:
    path: tuple[str, ...]     # ("rollout", "max_turns")
    field: dataclasses.Field
    hint: object              # the field's type

    @property
    def dest(self) -> str:
        return "__".join(self.path)


def leaves(cls, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """Every setting of `cls`, nested configs' fields included."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += leaves(hints[f.name], prefix + (f.name,))
        else:
            out.append(Leaf(prefix + (f.name,), f, hints[f.name]))
    return out


def flag_names(items: list[Leaf]) -> dict[str, str]:
    """dest -> flag, by the rule in the module docstring."""
    top = {leaf.path[0] for leaf in items if len(leaf.path) == 1}
    counts: dict[str, int] = {}
    for leaf in items:
        counts[leaf.path[-1]] = counts.get(leaf.path[-1], 0) + 1
    names = {}
    for leaf in items:
        name = leaf.path[-1]
        if len(leaf.path) > 1 and (name in top or counts[name] > 1):
            name = "_".join(leaf.path)
        names[leaf.dest] = leaf.field.metadata.get("flag") or "--" + name.replace("_", "-")
    return names


def _plain(hint):
    """The type without None (`int | None` -> int)."""
    rest = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(rest) == 1 and type(None) in typing.get_args(hint):
        return rest[0]
    return hint


def _takes_list(kind) -> bool:
    """list[...] or a union with a list in it (`str | list[str]`)."""
    return (typing.get_origin(kind) or kind) is list or any(typing.get_origin(a) is list for a in typing.get_args(kind))


def _cli_default(value):
    """A config default as click shows and parses it (a list comma-joined; no default: None)."""
    if value is dataclasses.MISSING:
        return None
    if isinstance(value, list):
        return ",".join(map(str, value))
    return value


def param(leaf: Leaf, flag: str, short: str | None, cls, optional: bool = False) -> click.Parameter:
    """The click option (or argument) of one setting of `cls`; `optional`: not required even
    without a default (the command fills it otherwise)."""
    f = leaf.field
    kind = _plain(leaf.hint)
    origin = typing.get_origin(kind) or kind
    if f.metadata.get("arg"):
        return click.argument(leaf.dest, nargs=-1 if _takes_list(kind) else 1, required=True)
    default = nested_default(cls, leaf.path)
    names = [flag] + ([short] if short else [])
    required = default is dataclasses.MISSING and not optional
    extra = dict(help=help_of(f), show_default=default not in (None, "", dataclasses.MISSING),
                 default=_cli_default(default))
    choices = f.metadata.get("choices")
    if origin is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", *names[1:], leaf.dest, **extra)
    if origin is dict:
        shown = " ".join(f"{k}={'' if v is None else v}" for k, v in (default or {}).items())
        return click.option(*names, leaf.dest, multiple=True, metavar="NAME=VALUE",
                            help=f"{extra['help']} Repeat for more." + (f"  [default: {shown}]" if shown else ""))
    if origin is list:
        return click.option(*names, leaf.dest, metavar="A,B,...", required=required, **extra)
    ctype = click.Choice(choices) if choices else {int: int, float: float}.get(origin, str)
    return click.option(*names, leaf.dest, type=ctype, required=required, **extra)


def settings_options(cls, short: dict[str, str] | None = None, optional: tuple[str, ...] = (),
                     skip: tuple[str, ...] = ("rollout.group",)):
    """A decorator that adds every setting of `cls` to a click command. `short`: extra short
    names by field ({"topk": "-k"}); `optional`: required fields the command fills otherwise;
    `skip`: dotted paths the stage sets itself (a stage's rollout samples its own group)."""
    items = [leaf for leaf in leaves(cls) if ".".join(leaf.path) not in skip]
    names = flag_names(items)

    def decorate(fn):
        for leaf in reversed(items):
            short_name = (short or {}).get(leaf.path[-1])
            fn = param(leaf, names[leaf.dest], short_name, cls, leaf.path[-1] in optional)(fn)
            if leaf.field.metadata.get("was"):
                fn = old_flag("--" + leaf.field.metadata["was"].replace("_", "-"), names[leaf.dest])(fn)
        return fn

    return decorate


def old_flag(old: str, new: str):
    """A hidden flag under a setting's old name: given, it fails with a message naming the new one."""
    def fail(ctx, param, value):
        if value is not None:
            raise click.UsageError(f"{old} is now {new}")

    return click.option(old, hidden=True, expose_value=False, callback=fail, is_eager=True)


def nested_default(cls, path: tuple[str, ...]):
    """The default of the setting at `path`; a nested config's field defaults to its parent's
    default for it (eval's rollout is greedy though RolloutConfig's temperature is 1)."""
    value = dataclasses.MISSING
    for i, name in enumerate(path):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        value = default_of(f) if i == 0 else getattr(value, name)
        cls = typing.get_type_hints(cls)[name]
    return value


def settings_from(cls, options: dict, **fixed):
    """The `cls` config from a command's options (those it offers are popped from `options`),
    built and checked by `recipe.build` like a recipe's stage; `fixed` fields are set as given."""
    values: dict = {}
    given = click.get_current_context().get_parameter_source
    items = leaves(cls)
    names = flag_names(items)
    for leaf in items:
        value = options.pop(leaf.dest, None)
        if given(leaf.dest) in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP) or value is None or value == ():
            continue
        kind = _plain(leaf.hint)
        origin = typing.get_origin(kind) or kind
        if leaf.field.metadata.get("arg") and isinstance(value, tuple):  # nargs=-1: str | list[str]
            value = value[0] if len(value) == 1 and origin is not list else list(value)
        elif origin is dict:
            value = {**(default_of(leaf.field) or {}), **pairs(value, names[leaf.dest])}
        elif origin is list:
            item = (typing.get_args(kind) or (str,))[0]
            value = [_item(v.strip(), item, names[leaf.dest]) for v in value.split(",") if v.strip()]
        node = values
        for part in leaf.path[:-1]:
            node = node.setdefault(part, {})
        node[leaf.path[-1]] = value
    values.update(fixed)
    return build(cls, values, click.get_current_context().command_path)


def _item(text: str, kind, flag: str):
    try:
        return kind(text)
    except ValueError:
        raise UserError(f"{flag} takes a comma-separated list of {kind.__name__} values, got {text!r}") from None


def pairs(items, flag: str) -> dict:
    """NAME=VALUE pairs as a dict (an empty value is None)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"{flag} takes NAME=VALUE, got {item!r}")
        out[name] = value or None
    return out
