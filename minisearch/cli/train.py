"""The training stages' commands (`traj`, `sft`, `dapo`): their options are the stage configs'
fields (`cli.options`), so a flag and a recipe key are one setting."""

from __future__ import annotations

import click

from minisearch.cli.options import settings_from, settings_options
from minisearch.errors import user_errors
from minisearch.train.dapo import DapoConfig
from minisearch.train.sft import SftConfig
from minisearch.train.traj import TrajConfig


@click.command()
@settings_options(TrajConfig, short={"topk": "-k"})
@user_errors
def traj(**options):
    """Make accepted agent trajectories for TASKS (RAMP or QA JSONL) with a teacher."""
    from minisearch.train.traj import run

    click.echo(f"wrote {run(settings_from(TrajConfig, options), echo=click.echo)}")


@click.command()
@settings_options(SftConfig, short={"topk": "-k"})
@user_errors
def sft(**options):
    """LoRA SFT on DATA (traj folders or JSONL files of trajectories, one or more); loss on
    model-written tokens only."""
    from minisearch.train.sft import run

    run(settings_from(SftConfig, options), echo=click.echo)


@click.command()
@settings_options(DapoConfig, short={"topk": "-k"})
@user_errors
def dapo(**options):
    """DAPO on TASKS (RAMP or QA JSONL) with hybrid rewards and a mask-count curriculum."""
    from minisearch.train.dapo import run

    run(settings_from(DapoConfig, options), echo=click.echo)
