"""The run's report: `runs/NAME/report.md` and its plots, built after the run from the files
the stages left (done.json, metrics.jsonl, eval/metrics.json). Small, and remade on demand:

    minisearch report runs/demo
"""

from __future__ import annotations

import json
from pathlib import Path

from minisearch.jsonl import read_jsonl
from minisearch.rundir import read_done

# (file name, title, [(metrics key, label)]) for the kinds of stage that log per step
PLOTS = {
    "dapo": [("reward", "DAPO reward and its parts", [("reward", "reward"), ("answer", "answer"),
                                                      ("format", "format")]),
             ("length", "DAPO model tokens and searches per sample",
              [("model_tokens", "model tokens"), ("searches", "searches (right axis)")]),
             ("curriculum", "DAPO curriculum stage (masks per task)", [("k", "masks")])],
    "sft": [("loss", "SFT loss and token accuracy", [("loss", "loss"), ("token_acc", "token accuracy (right axis)")])],
    "warmup": [("loss", "warm-up loss", [("loss", "loss")])],
}


def write_report(root: str | Path) -> Path:
    root = Path(root)
    stages = [(p.name, d) for p in sorted(root.iterdir(), key=_mtime) if p.is_dir() and (d := read_done(p))]
    lines = [f"# Run `{root.name}`", ""]
    eval_path = root / "eval" / "metrics.json"
    if eval_path.is_file():
        from minisearch.eval.stage import table

        lines += ["## Held-out evaluation", "", table(json.loads(eval_path.read_text())), ""]
    lines += ["## Stages", "", "| stage | seconds | counts |", "|---|---|---|"]
    lines += [f"| {name} | {d.get('seconds', '-')} | {_counts(d.get('counts', {}))} |" for name, d in stages]
    plots, kinds = [], _kinds(root)
    for name, _ in stages:
        kind = kinds.get(name, name)
        rows = list(read_jsonl(root / name / "metrics.jsonl")) if (root / name / "metrics.jsonl").is_file() else []
        for file, title, series in PLOTS.get(kind, []) if len(rows) > 1 else []:
            out = root / "plots" / f"{name}-{file}.png"
            if plot(rows, series, f"{title} ({name})", out):
                plots.append(out)
    if plots:
        lines += ["", "## Curves", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _mtime(p: Path) -> float:
    done = p / "done.json"
    return done.stat().st_mtime if done.is_file() else 0.0


def _kinds(root: Path) -> dict[str, str]:
    """Stage name -> kind, from the run's recipe (a stage's name is its kind unless it says)."""
    recipe = root / "recipe.yaml"
    if not recipe.is_file():
        return {}
    import yaml

    stages = yaml.safe_load(recipe.read_text()).get("stages") or {}
    return {name: (values or {}).get("kind", name) for name, values in stages.items()}


def _counts(counts: dict) -> str:
    keep = {k: v for k, v in counts.items() if not isinstance(v, (dict, list))}
    text = ", ".join(f"{k} {v}" for k, v in keep.items())
    return text if len(text) < 200 else text[:197] + "..."


def plot(rows: list[dict], series: list[tuple[str, str]], title: str, out: Path) -> bool:
    """One PNG: the series against `step`; a label ending '(right axis)' goes on a second axis."""
    present = [(key, label) for key, label in series if any(key in r for r in rows)]
    if not present:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    right = ax.twinx() if any(label.endswith("(right axis)") for _, label in present) else None
    for i, (key, label) in enumerate(present):
        points = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
        axis = right if right is not None and label.endswith("(right axis)") else ax
        axis.plot([p[0] for p in points], [p[1] for p in points], label=label, color=f"C{i}",
                  drawstyle="steps-post" if key == "k" else "default")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=10)
    handles = [h for a in (ax, right) if a is not None for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return True
