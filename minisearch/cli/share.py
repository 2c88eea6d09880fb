"""Sharing what a run trained (`export hub`, `export merged`); `cli/main.py` adds them to the
`minisearch export` group. Both read the run folder's recipe for its stages."""

from __future__ import annotations

import json
from pathlib import Path

import click

from minisearch.errors import UserError, user_errors


def _run(run_dir: str, stage: str | None):
    """(run folder, its stages, the stage named or else the run's final adapter's)."""
    from minisearch.pipeline.stages import run_stages

    root = Path(run_dir)
    stages = run_stages(root)
    if stage is None:
        made = json.loads((root / "run.json").read_text()) if (root / "run.json").is_file() else {}
        if "adapter" not in made:
            raise UserError(f"{root}: no finished run with an adapter (run.json); name one with --stage")
        stage = Path(made["adapter"]).parent.name
    return root, stages, stage


@click.command("merged")
@click.argument("run_dir", metavar="RUN")
@click.option("--stage", default=None, help="The stage whose adapter to merge [default: the run's final agent].")
@click.option("--out", required=True, help="The folder to write (new or empty).")
@user_errors
def export_merged(run_dir, stage, out):
    """Merge a stage's LoRA adapter into its base: one plain Hugging Face model folder (weights,
    tokenizer and chat template, generation_config with the stop strings, model card) for
    AutoModelForCausalLM, vLLM's OpenAI server, TGI or llama.cpp's converters."""
    from minisearch.export.merged import merge

    root, stages, stage = _run(run_dir, stage)
    click.echo(f"merged {root.name}/{stage} into {merge(root, stages, stage, out)}")


@click.command("hub")
@click.argument("run_dir", metavar="RUN")
@click.argument("stage")
@click.option("--repo", default=None, help="The Hub repo, USER/NAME [default: your user / RUN-STAGE].")
@click.option("--merged", is_flag=True, help="Upload the merged model instead of the adapter (needed when the "
                                              "base is not on the Hub, as the tiny model is not).")
@click.option("--private", is_flag=True, help="Make a new repo private.")
@user_errors
def export_hub(run_dir, stage, repo, merged, private):
    """Upload STAGE's adapter of RUN with its model card to the Hugging Face Hub (needs a token
    and internet)."""
    from minisearch.export.hub import upload

    root, stages, stage = _run(run_dir, stage)
    upload(root, stages, stage, repo=repo, merged=merged, private=private, echo=click.echo)
