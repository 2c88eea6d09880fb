"""Model cards: a README.md in the Hugging Face model card format for every adapter a run trained.

    write_cards(root, stages)     # the runner, after the eval stage: RUN/sft/adapter/README.md, ...
    card_text(root, stages, "qa-sft", merged=True)   # the card of a merged folder (export/merged.py)

The YAML header is what the Hub reads: `base_model` (a Hub id where the base is one; a base
built in the run, the tiny model, is named by its folder in the run, as peft names local
bases), `library_name` (peft for an adapter, transformers for a merged model), the base's
license, tags, and the adapter's eval rows as `model-index` results. The body says how it was
made: the stage's settings and the run's recipe (the command that reproduces it), the corpus
and retriever, the tag protocol with its stop strings and system prompt, and the eval table's
rows of this adapter. Everything comes from the run folder, so a card can be made again at
any time (`minisearch export hub` and `export merged` do).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import yaml

from minisearch.agent.protocol import STOP, TAGS, system_prompt
from minisearch.rundir import run_relative

ADAPTER_KINDS = ("sft", "dapo")
# Licenses of the bases the shipped recipes name, as the Hub spells them (their model cards say so).
KNOWN_LICENSES = {"Qwen/Qwen2.5-1.5B-Instruct": "apache-2.0", "Qwen/Qwen3-1.7B": "apache-2.0",
                  "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0"}
# The numbers of an eval row the header lists (span accuracy on RAMP sets, EM / F1 / recall on QA).
HEADER_METRICS = ("span_acc", "span_recall", "em", "f1", "recall", "format_ok")


def base_of(model: str, root: Path) -> dict:
    """The base model of an adapter: {"name": what the card calls it, "hub_id": its Hub id or None,
    "license": a Hub license id}. A folder `minisearch pretrained` wrote names its source in
    source.json; a model `minisearch init` built is minisearch's own (Apache-2.0, like the project)."""
    from minisearch.pretrained import SOURCE_INFO
    from minisearch.records import tiny_model_info

    path = Path(model)
    if not path.is_dir():  # a Hub id
        return {"name": model, "hub_id": model, "license": KNOWN_LICENSES.get(model) or _cached_license(model)}
    name = run_relative(str(path), root) if str(path).startswith(str(root)) else str(path)
    if (path / SOURCE_INFO).is_file():
        source = json.loads((path / SOURCE_INFO).read_text())
        hub_id = source.get("model", "").split(" ")[0] or None
        return {"name": hub_id or name, "hub_id": hub_id, "license": source.get("license", "other").lower()}
    if tiny_model_info(path):
        return {"name": name, "hub_id": None, "license": "apache-2.0"}
    return {"name": name, "hub_id": None, "license": "other"}


def _cached_license(model_id: str) -> str:
    """The license in the base's own card where the Hub cache holds it; else "other"."""
    from huggingface_hub import ModelCard, try_to_load_from_cache

    path = try_to_load_from_cache(model_id, "README.md")
    if isinstance(path, str):
        return ModelCard.load(path).data.license or "other"
    return "other"


def adapter_stages(stages) -> list:
    """The run's stages that train an adapter (sft and dapo kinds, whatever their names)."""
    return [s for s in stages if s.kind in ADAPTER_KINDS]


def adapter_stage(stages, name: str, root: Path):
    """The stage `name` of the run at `root`, which must have trained an adapter (and finished)."""
    from minisearch.errors import UserError, nearest

    names = [s.name for s in adapter_stages(stages)]
    stage = next((s for s in adapter_stages(stages) if s.name == name), None)
    if stage is None:
        raise UserError(f"{root}: no stage {name!r} that trains an adapter{nearest(name, names)}; "
                        f"those of this run: {', '.join(names) or 'none'}")
    if not (Path(stage.cfg.out) / "adapter" / "adapter_config.json").is_file():
        raise UserError(f"{Path(stage.cfg.out) / 'adapter'}: no adapter yet; finish the run first "
                        f"(minisearch run {root / 'recipe.yaml'})")
    return stage


def eval_rows(root: Path, stages, stage) -> tuple[dict, list[dict]]:
    """(the eval setting, the rows of the run's eval tables that scored `stage`'s adapter)."""
    adapter = (Path(stage.cfg.out) / "adapter").resolve()
    setting, rows = {}, []
    for s in stages:
        table = Path(s.cfg.out) / "metrics.json"
        if s.kind != "eval" or not table.is_file():
            continue
        labels = {label for label, path in s.cfg.models.items() if path and Path(path).resolve() == adapter}
        result = json.loads(table.read_text())
        setting = setting or result["setting"]
        rows += [r for r in result["rows"] if r["model"] in labels]
    return setting, rows


def card_text(root: str | Path, stages, name: str, merged: bool = False, hub: bool = False) -> str:
    """The card of stage `name`'s adapter (or, `merged`, of the base with it merged in); `hub`:
    for an upload, so a base that is not on the Hub is named in the body only."""
    from huggingface_hub import EvalResult, ModelCardData

    from minisearch.eval.stage import table

    root = Path(root)
    stage = adapter_stage(stages, name, root)
    base = base_of(stage.cfg.model, root)
    setting, rows = eval_rows(root, stages, stage)
    results = [EvalResult(task_type="question-answering", task_name="search agent", dataset_type=r["set"],
                          dataset_name=r["set"], metric_type=key, metric_name=f"{key} ({r['model']})",
                          metric_value=r[key])
               for r in rows for key in HEADER_METRICS if r.get(key) is not None]
    data = ModelCardData(
        base_model=base["hub_id"] if hub else base["hub_id"] or base["name"], license=base["license"],
        library_name="transformers" if merged else "peft", pipeline_tag="text-generation",
        tags=["minisearch", "search-agent", "masksearch", stage.kind] + ([] if merged else ["lora"]),
        model_name=f"{root.name}/{name}", eval_results=results or None)
    recipe = (root / "recipe.yaml").read_text() if (root / "recipe.yaml").is_file() else ""
    settings = yaml.safe_dump(run_relative(asdict(stage.cfg), root, mark="<run>/"), sort_keys=False)
    # the agent searches as it was scored (the eval table's setting), else as this stage ran it
    topk, turns, words = (setting.get(k, getattr(stage.cfg.rollout, k))
                          for k in ("topk", "max_turns", "words_per_hit"))
    what = "the base model with this LoRA adapter merged in" if merged else "a LoRA adapter"
    lines = [f"# {root.name}/{name}: a search agent", "",
             f"{what[0].upper() + what[1:]} of `{base['name']}` (license {base['license']}), trained by minisearch's "
             f"`{stage.kind}` stage (MaskSearch: RAMP pre-training, SFT, DAPO with a curriculum) "
             f"in the run `{root.name}`" + (f", on top of the adapter `{run_relative(stage.cfg.adapter, root)}`"
                                             if stage.cfg.adapter else "") + ".", "",
             "## The tag protocol", "",
             f"The agent thinks in `<think>…</think>`, searches with `<search>query</search>` and answers in "
             f"`<answer>…</answer>`. Stop generating at the stop strings {', '.join(f'`{s}`' for s in STOP)} "
             f"and keep them in the output; after `</search>` the caller runs the search and appends "
             f"`<information>Doc 1 (Title: …) …</information>` (the top {topk} passages, "
             f"{words} words each), then generation goes on in the same sequence. At most {turns} searches. "
             f"Tags: {' '.join(f'`{t}`' for t in TAGS)}. The system prompt, in the base model's chat template:",
             "", "```text", system_prompt(turns), "```", "",
             "## Corpus and retriever", "", _corpus(root, stages, setting), "",
             "## Evaluation", ""]
    if rows:
        lines += [table({"setting": setting, "rows": rows}, paper=False), ""]
    else:
        lines += ["No eval stage of the run scored this adapter.", ""]
    lines += ["## Use it", "", "```bash", *_usage(root, stages, name, base, merged), "```", "",
              "## How it was made", "", f"The `{name}` stage's settings (paths inside the run as `<run>/`):", "",
              "```yaml", settings.rstrip(), "```", "",
              "The run's recipe (every `--set` applied); `minisearch run recipe.yaml` with it makes the run again, "
              f"this adapter included (`--from {name}` from this stage on):", "", "```yaml", recipe.rstrip(), "```", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)


def _corpus(root: Path, stages, setting: dict) -> str:
    """The corpus and retriever in a sentence: the eval table's setting, else the index's meta."""
    if not setting:
        from minisearch.search import read_meta

        index = next((s for s in stages if s.kind == "index"), None)
        meta = read_meta(index.cfg.out) if index is not None and Path(index.cfg.out).is_dir() else {}
        setting = {"corpus": meta.get("source", "?"), "passages": meta.get("passages", "?"),
                   "retriever": f"{meta.get('backend', '?')} BM25"}
    corpus = run_relative(setting["corpus"], root, mark="<run>/")
    return (f"Corpus: `{corpus}` ({setting['passages']} passages); retriever: {setting['retriever']}, "
            "the local index the run built (`minisearch serve` puts it behind the Search-R1 retrieval API).")


def _usage(root: Path, stages, name: str, base: dict, merged: bool) -> list[str]:
    """Commands that use the agent (RUN: the run folder, which holds the index it searched)."""
    index = next((s.name for s in stages if s.kind == "index"), "index")
    if merged:
        return [f"minisearch chat --model THIS_FOLDER --index RUN/{index}",
                "vllm serve THIS_FOLDER   # OpenAI API: send \"stop\": [\"</search>\", \"</answer>\"], "
                "\"include_stop_str_in_output\": true"]
    lines = [f"minisearch chat --run RUN --adapter RUN/{name}/adapter"]
    if base["hub_id"]:
        lines.append(f"minisearch chat --model {base['hub_id']} --adapter THIS_FOLDER --index RUN/{index}")
    return lines + [f"minisearch export merged RUN --stage {name} --out merged   # one plain model folder"]


def write_cards(root: str | Path, stages) -> list[Path]:
    """README.md in every adapter folder of the run (after eval, so the cards hold its rows)."""
    root = Path(root)
    written = []
    for stage in adapter_stages(stages):
        folder = Path(stage.cfg.out) / "adapter"
        if (folder / "adapter_config.json").is_file():
            (folder / "README.md").write_text(card_text(root, stages, stage.name), encoding="utf-8")
            written.append(folder / "README.md")
    return written
