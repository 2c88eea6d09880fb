"""The whole-loop commands (`run`, `eval`, `report`); `cli.py` adds them to the `minisearch` group."""

from __future__ import annotations

import click

from minisearch.errors import UserError, user_errors


@click.command("run")
@click.argument("recipe")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Change a recipe value (sft.lr=1e-3).")
@click.option("--from", "start", metavar="STAGE", help="Rerun from this stage on, complete or not.")
@user_errors
def run_cmd(recipe, sets, start):
    """Run RECIPE's stages in order; complete stages are skipped, a killed run resumes."""
    from minisearch.pipeline.runner import run_recipe

    root = run_recipe(recipe, list(sets), start, echo=click.echo)
    click.echo(f"Chat with it: minisearch chat --run {root}")


def _pairs(items, what: str) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"{what} takes NAME=VALUE, got {item!r}")
        out[name] = value or None
    return out


@click.command("eval")
@click.option("--model", required=True, help="Base model folder or Hugging Face id.")
@click.option("--index", "index_dir", required=True, help="The index the agent searches (a folder or a server URL).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Stage folder to write.")
@click.option("--set", "sets", multiple=True, required=True, metavar="NAME=SET",
              help="A set to score: a JSONL file, hotpotqa, 2wikimultihopqa, musique, bamboogle, fanoutqa, "
                   "or freshqa:CSV. Repeat for more.")
@click.option("--adapter", "adapters", multiple=True, metavar="LABEL=DIR",
              help="A trained adapter to score beside the base model. Repeat for more.")
@click.option("--baseline", "baselines", multiple=True, type=click.Choice(["rag-pe"]),
              help="Baselines of the base model beside the prompted agent (Agent-PE).")
@click.option("--backend", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--limit", default=64, show_default=True, help="Tasks per set.")
@click.option("--max-turns", default=4, show_default=True)
@click.option("-k", "topk", default=3, show_default=True, help="Passages per search.")
@user_errors
def eval_cmd(model, index_dir, out, sets, adapters, baselines, backend, limit, max_turns, topk):
    """Score the base model and trained adapters on held-out sets; writes OUT/metrics.json and table.md."""
    from minisearch.agent.rollout import RolloutConfig
    from minisearch.eval.stage import EvalConfig, run

    run(EvalConfig(model=model, index=index_dir, out=out, sets=_pairs(sets, "--set"),
                   models={"base": None, **_pairs(adapters, "--adapter")}, baselines=list(baselines),
                   limit=limit, backend=backend,
                   rollout=RolloutConfig(temperature=0.0, max_turns=max_turns, topk=topk)), echo=click.echo)


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
