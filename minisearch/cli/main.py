"""The `minisearch` command line.

Every command imports its stage lazily, so `minisearch --help` starts instantly and works
without torch, Whoosh or a GPU stack installed.
"""

from __future__ import annotations

import json
import sys
import warnings

import click

from minisearch.cli.loop import eval_cmd, report, run_cmd
from minisearch.cli.train import dapo, sft, traj
from minisearch.errors import UserError, user_errors


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


@main.command()
@click.option("--size", default=500, show_default=True, help="Number of entities (one passage each).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same world.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@user_errors
def toyworld(size, seed, out):
    """Write the built-in fictional encyclopedia: passages + QA (train/dev/test)."""
    from minisearch.data.toyworld import write_world

    counts = write_world(out, size=size, seed=seed)
    click.echo(json.dumps(counts, indent=2))


@main.command()
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Stage folder to write.")
@click.option("--strict", is_flag=True, help="Fail on the first bad line instead of skipping it.")
@click.option("--words", default=100, show_default=True, help="Passage length for .txt/.md splitting.")
@user_errors
def corpus(source, out, strict, words):
    """Collect passages from SOURCE into OUT/passages.jsonl.

    SOURCE is a JSONL file ({"id","contents"} or {"id","title","text"}), a folder of
    .txt/.md/.jsonl files, `toyworld[:SIZE]`, or `hf:DATASET` (needs internet).
    """
    from minisearch.data.corpus import CorpusConfig, run

    path = run(CorpusConfig(source=source, out=out, strict=strict, passage_words=words))
    click.echo(f"wrote {path}")


@main.group()
def index():
    """Build, query and describe a search index."""


@index.command("build")
@click.argument("source")
@click.option("--out", type=click.Path(file_okay=False), help="Index folder [default: SOURCE.idx].")
@click.option("--backend", type=click.Choice(["whoosh", "bm25s"]), default="whoosh", show_default=True)
@click.option("--procs", default=1, show_default=True, help="Indexing processes (whoosh).")
@click.option("--strict", is_flag=True, help="Fail on the first bad input line instead of skipping it.")
@user_errors
def index_build(source, out, backend, procs, strict):
    """Index SOURCE (passages JSONL, a corpus folder, a folder of documents)."""
    from minisearch.data.index import IndexConfig, run

    path = run(IndexConfig(source=source, out=out, backend=backend, procs=procs, strict=strict))
    click.echo(f"index ready: {path}")


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


@main.command()
@click.argument("corpus")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Stage folder to write.")
@click.option("--k-weights", default="0.4,0.3,0.2,0.1", show_default=True,
              help="Weights of k = 1,2,3,4 masks per task.")
@click.option("--dev", "dev_fraction", default=0.05, show_default=True, help="Share of passages held out.")
@click.option("--seed", default=0, show_default=True)
@click.option("--hard-model", help="Perplexity masking: mask the spans this model guesses worst.")
@click.option("--index", "index_dir", help="Mask only spans that another passage of this index holds.")
@click.option("--per-passage", default=1, show_default=True, help="Tasks per passage, each with other masks.")
@user_errors
def ramp(corpus, out, k_weights, dev_fraction, seed, hard_model, index_dir, per_passage):
    """Make RAMP tasks (masked passages to fill by searching) from CORPUS."""
    from minisearch.ramp.tasks import RampConfig, run

    try:
        weights = [float(w) for w in k_weights.split(",")]
    except ValueError as e:
        raise UserError(f"--k-weights takes four numbers like 0.4,0.3,0.2,0.1, got {k_weights!r}") from e
    path = run(RampConfig(corpus=corpus, out=out, k_weights=weights, dev_fraction=dev_fraction, seed=seed,
                          hard_model=hard_model, index=index_dir, per_passage=per_passage))
    click.echo(f"wrote {path}")


def agent_options(fn):
    """The options chat and ask share."""
    options = [
        click.option("--run", help="A run folder: its model, newest adapter and index."),
        click.option("--index", "index_dir", help="Index folder or search server URL (overrides the run's)."),
        click.option("--model", help="Model folder or Hugging Face id (overrides the run's)."),
        click.option("--backend", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True),
        click.option("--max-turns", default=4, show_default=True, help="Searches allowed per question."),
        click.option("-k", "topk", type=int, help="Passages per search [the run's, else 3]."),
        click.option("--show-thoughts", is_flag=True, help="Print the model's <think> text too."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_agent(run, index_dir, model, backend, max_turns, topk, show_thoughts, keep_history=False):
    from minisearch.agent.chat import Agent, ChatConfig, resolve

    index_dir, model, adapter, topk = resolve(run, index_dir, model, topk)
    return Agent(ChatConfig(index=index_dir, model=model, adapter=adapter, backend=backend, max_turns=max_turns,
                            topk=topk, show_thoughts=show_thoughts, keep_history=keep_history))


for _command in (traj, sft, dapo, run_cmd, eval_cmd, report):
    main.add_command(_command)


@main.command()
@agent_options
@click.option("--keep-history", is_flag=True, help="Carry earlier questions and answers into the next.")
@user_errors
def chat(keep_history, **options):
    """Answer questions interactively by searching."""
    from minisearch.agent.chat import repl

    repl(make_agent(keep_history=keep_history, **options))


@main.command()
@click.argument("question")
@agent_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer, searches and titles as JSON.")
@user_errors
def ask(question, as_json, **options):
    """Answer one QUESTION by searching (for scripts)."""
    from minisearch.agent.chat import printer, summary

    agent = make_agent(**options)
    traj = agent.ask(question, None if as_json else printer(agent))
    if as_json:
        click.echo(json.dumps(summary(question, traj, agent.found), ensure_ascii=False))
    elif traj.answer is None:
        click.echo(f"  no answer ({traj.end})")
    if traj.answer is None:
        sys.exit(1)


@main.command()
@click.argument("index_dir", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 opens it to the network).")
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Search processes for large batches.")
@click.option("--max-queries", default=256, show_default=True, help="Queries one request may hold.")
@click.option("--max-topk", default=100, show_default=True, help="Hits one query may ask for.")
@user_errors
def serve(index_dir, host, port, workers, max_queries, max_topk):
    """Serve INDEX_DIR over the Search-R1 retrieval API (POST /retrieve, GET /health).

    \b
    curl -s localhost:8000/retrieve -d '{"queries": ["Vethmora Holdings"], "topk": 3, "return_scores": true}'
    Any command that takes an index takes this URL too: --index http://127.0.0.1:8000/retrieve
    """
    from minisearch.search.server import Limits, serve

    serve(index_dir, host=host, port=port, workers=workers, echo=click.echo,
          limits=Limits(max_queries=max_queries, max_topk=max_topk))


@main.group()
def model():
    """Make and inspect models (the tiny CPU model)."""


@model.command("init")
@click.option("--corpus", "source", required=True, help="Passages to train the tokenizer on (any corpus source).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--vocab", default=4096, show_default=True, help="Tokenizer vocabulary size.")
@click.option("--seed", default=0, show_default=True)
@user_errors
def model_init(source, out, vocab, seed):
    """Build the tiny CPU model: a tokenizer trained on the corpus and a random small Qwen2."""
    from minisearch.tiny.model import InitConfig, TinyModelConfig, run

    run(InitConfig(corpus=source, out=out, arch=TinyModelConfig(vocab_size=vocab, seed=seed)), echo=click.echo)


@model.command("warmup")
@click.option("--model", "model_dir", required=True, help="The model folder from `minisearch model init`.")
@click.option("--corpus", required=True, help="Text to read (any corpus source).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the warmed-up model.")
@click.option("--steps", default=600, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--copy-share", default=0.5, show_default=True, help="Share of copy-exercise blocks (0: plain text).")
@click.option("--seed", default=0, show_default=True)
@user_errors
def model_warmup(model_dir, corpus, out, steps, batch_size, lr, copy_share, seed):
    """Language-model warm-up of the tiny model on the corpus (all weights)."""
    from minisearch.tiny.warmup import WarmupConfig, run

    run(WarmupConfig(model=model_dir, corpus=corpus, out=out, steps=steps, batch_size=batch_size, lr=lr,
                     copy_share=copy_share, seed=seed), echo=click.echo)


@main.group()
def export():
    """Export tasks for other trainers."""


@export.command("verl")
@click.argument("source", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--url", default="http://127.0.0.1:8000/retrieve", show_default=True,
              help="Where `minisearch serve` will answer veRL's search tool.")
@click.option("--max-turns", type=int, help="Searches allowed per task [the run's, else 4].")
@click.option("-k", "topk", type=int, help="Passages per search [the run's, else 3].")
@click.option("--val-fraction", default=0.05, show_default=True,
              help="Held out for validation when no dev.jsonl lies beside the tasks.")
@click.option("--seed", default=0, show_default=True)
@user_errors
def export_verl(source, out, url, max_turns, topk, val_fraction, seed):
    """Write SOURCE's tasks as veRL RL parquet: one file per curriculum stage (k = 1..4) and
    one for QA, train and validation, with veRL's tool config and reward entry point.

    SOURCE: a run folder (e.g. runs/demo), a stage folder with train.jsonl, or a tasks JSONL.
    README, "Scale out", has the veRL command for each stage.
    """
    from minisearch.export.verl_data import ExportConfig, run

    run(ExportConfig(source=source, out=out, url=url, max_turns=max_turns, topk=topk, val_fraction=val_fraction,
                     seed=seed), echo=click.echo)


if __name__ == "__main__":
    main()
