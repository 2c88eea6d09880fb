"""The `minisearch` command line.

One command per stage kind, made from the runner's table (`cli.stages`), and the commands
that are not stages (run, chat, ask, show, serve, export, report, index search/info), written
here and in `cli/loop.py` and `cli/share.py`. Each command's options are its config's fields
(`cli.options`). The config modules import no heavy library at load time and every stage's
work is imported lazily, so `minisearch --help` starts instantly and works without torch, Whoosh or a GPU stack.
"""

from __future__ import annotations

import json
import sys
import warnings

import click
from click.core import ParameterSource

from minisearch.agent.chat import ChatConfig
from minisearch.cli.loop import report, run_cmd
from minisearch.cli.options import settings_from, settings_options
from minisearch.cli.share import export_hub, export_merged
from minisearch.cli.stages import add_stage_commands
from minisearch.errors import user_errors
from minisearch.export.verl_data import ExportConfig
from minisearch.search.server import ServeConfig


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="minisearch")
def main():
    """Train small language models to be search agents (MaskSearch on one GPU).

    \b
    Pipeline: toyworld/corpus -> index -> ramp -> traj -> sft -> dapo -> eval -> report
    Quick start: make demo   (CPU, built-in toy world, tiny model)
    """
    # the libraries' notices of their own API changes are for developers, not in a user's chat
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\.")


@main.group()
def index():
    """Build, query and describe a search index."""


@index.command("search")
@click.argument("index_dir", type=click.Path())
@click.argument("query", nargs=-1, required=True)
@click.option("-k", default=3, show_default=True, help="Hits to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@user_errors
def index_search(index_dir, query, k, as_json):
    """Search INDEX_DIR (a folder or a server URL) for QUERY: titles, scores, snippets."""
    from minisearch.search import open_searcher

    with open_searcher(index_dir) as searcher:
        hits = searcher.search([" ".join(query)], k=k)[0]
    if as_json:
        for hit in hits:
            click.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
        return
    if not hits:
        click.echo("no hits")
    for rank, hit in enumerate(hits, start=1):
        click.echo(f"{rank}. {hit.title}  (score {hit.score:.2f}, id {hit.id})")
        click.echo(f"   {snippet(hit.text)}")


def snippet(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3].rsplit(" ", 1)[0] + "..."


@index.command("info")
@click.argument("index_dir", type=click.Path())
@user_errors
def index_info(index_dir):
    """Describe an index: backend, size, where it came from."""
    from minisearch.search import index_info as info

    for key, value in info(index_dir).items():
        click.echo(f"{key:>12}: {value}")


def make_agent(run, options: dict):
    """The agent of chat and ask: the run folder's model, newest adapter, index and top-k,
    each overridden by the flag given."""
    from minisearch.agent.chat import Agent, resolve

    given = click.get_current_context().get_parameter_source
    topk = options["topk"] if given("topk") == ParameterSource.COMMANDLINE else None
    index_dir, model, adapter, topk = resolve(run, options["index"], options["model"], topk, planned(run))
    fixed = {"index": index_dir, "model": model, "topk": topk, "adapter": options["adapter"] or adapter}
    for key in fixed:
        options.pop(key)
    return Agent(settings_from(ChatConfig, options, **fixed))


def planned(run: str | None) -> dict | None:
    """What RUN's recipe makes (its model stage, whatever its name), when RUN has no run.json yet."""
    from pathlib import Path

    from minisearch.pipeline.runner import planned_model

    return planned_model(run) if run and not (Path(run) / "run.json").is_file() else None


def agent_options(fn):
    """The options chat and ask share: ChatConfig's, and a run folder to take them from."""
    fn = settings_options(ChatConfig, short={"topk": "-k"}, optional=("index", "model"))(fn)
    return click.option("--run", help="A run folder: its model, newest adapter, index and top-k.")(fn)


for _command in (run_cmd, report):
    main.add_command(_command)
add_stage_commands(main, groups={"index": index})


@main.command()
@agent_options
@user_errors
def chat(run, **options):
    """Answer questions interactively by searching."""
    from minisearch.agent.chat import repl

    repl(make_agent(run, options))


@main.command()
@click.argument("question")
@agent_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer, searches and titles as JSON.")
@user_errors
def ask(question, as_json, run, **options):
    """Answer one QUESTION by searching (for scripts)."""
    from minisearch.agent.chat import printer, summary

    agent = make_agent(run, options)
    traj = agent.ask(question, None if as_json else printer(agent))
    if as_json:
        click.echo(json.dumps(summary(question, traj, agent.found), ensure_ascii=False))
    elif traj.answer is None:
        click.echo(f"  no answer ({traj.end})")
    if traj.answer is None:
        sys.exit(1)


@main.command()
@click.argument("run_dir", metavar="RUN", type=click.Path())
@click.option("-n", "count", default=3, show_default=True, help="Held-out questions to answer live.")
@user_errors
def show(run_dir, count):
    """RUN's held-out tally, then a few of its questions answered live by the run's agent, right
    and wrong in the tally's proportion (spread through the set, not the best)."""
    from pathlib import Path

    from minisearch.agent.chat import Agent, ChatConfig, printer, resolve
    from minisearch.cli.show import held_out
    from minisearch.metrics import exact_match

    tally, examples = held_out(Path(run_dir), count)
    click.echo("\n".join(tally))
    index_dir, model, adapter, topk = resolve(run_dir, None, None, planned=planned(run_dir))
    agent = Agent(ChatConfig(index=index_dir, model=model, adapter=adapter, topk=topk))
    for example in examples:
        click.echo(f"\nquestion ({example['type'] or 'held-out'}): {example['question']}")
        traj = agent.ask(example["question"], printer(agent))
        verdict = "right" if exact_match(traj.answer, example["gold"]) else "wrong"
        said = "" if traj.answer is not None else f"  no answer ({traj.end})\n"
        click.echo(f"{said}  gold: {' | '.join(example['gold'])}  ({verdict})")


@main.command()
@settings_options(ServeConfig)
@user_errors
def serve(**options):
    """Serve INDEX over the Search-R1 retrieval API (POST /retrieve, GET /health).

    \b
    curl -s localhost:8000/retrieve -d '{"queries": ["Vethmora Holdings"], "topk": 3, "return_scores": true}'
    Any command that takes an index takes this URL too: --index http://127.0.0.1:8000/retrieve
    """
    from minisearch.search.server import serve

    serve(settings_from(ServeConfig, options), echo=click.echo)


@main.group()
def export():
    """Share what a run made: its agent merged or on the Hub, its tasks for other trainers."""


@export.command("verl")
@settings_options(ExportConfig, short={"topk": "-k"})
@user_errors
def export_verl(**options):
    """Write SOURCE's tasks as veRL RL parquet: one file per curriculum stage (k = 1..4) and
    one for QA, train and validation, with veRL's tool config and reward entry point.

    SOURCE: a run folder (e.g. runs/demo), a stage folder with train.jsonl, or a tasks JSONL.
    docs/scale-out.md has the veRL command for each stage.
    """
    from pathlib import Path

    from minisearch.export.verl_data import run
    from minisearch.pipeline.stages import run_stages

    cfg = settings_from(ExportConfig, options)
    run_folder = (Path(cfg.source) / "recipe.yaml").is_file()
    run(cfg, echo=click.echo, stages=run_stages(cfg.source) if run_folder else None)


export.add_command(export_merged)
export.add_command(export_hub)


if __name__ == "__main__":
    main()
