"""The whole-loop commands (`run`, `report`); `cli/main.py` adds them to the `minisearch` group."""

from __future__ import annotations

import click

from minisearch.errors import UserError, user_errors


@click.command("run")
@click.argument("recipe")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Change a recipe value (sft.lr=1e-3).")
@click.option("--from", "start", metavar="STAGE", help="Rerun from this stage on, complete or not.")
@click.option("--report-to", default=None, metavar="A,B",
              help="Trackers of the live curves: tensorboard, wandb, trackio, or none (the recipe's report_to) "
                   "[default: tensorboard where installed].")
@click.option("--plan", "plan_only", is_flag=True, help="Print what each stage will do and cost; run nothing.")
@click.option("--hardware", default=None, metavar="PROFILE",
              help="The machine the plan is for: cpu, rtx4090, rtx3060-12gb (minisearch/pipeline/hardware.yaml) "
                   "[default: cpu, or the GPU found].")
@user_errors
def run_cmd(recipe, sets, start, report_to, plan_only, hardware):
    """Run RECIPE's stages in order; complete stages are skipped, a killed run resumes."""
    from minisearch.pipeline.plan import plan_recipe
    from minisearch.pipeline.preflight import preflight
    from minisearch.pipeline.runner import run_recipe

    if report_to is not None:
        sets = [*sets, f"report_to={report_to}"]
    if plan_only:
        click.echo(plan_recipe(recipe, list(sets), hardware or "cpu")[1])
        return
    preflight(recipe, list(sets), hardware, echo=click.echo)
    root = run_recipe(recipe, list(sets), start, echo=click.echo)
    click.echo(f"Chat with it: minisearch chat --run {root}")


@click.command()
@click.argument("run_dir", metavar="RUN")
@user_errors
def report(run_dir):
    """Rebuild RUN/report.md and its plots from the stages' metrics."""
    from pathlib import Path

    from minisearch.eval.report import write_report

    if not Path(run_dir).is_dir():
        raise UserError(f"no run folder at {run_dir}")
    click.echo(f"wrote {write_report(run_dir)}")
