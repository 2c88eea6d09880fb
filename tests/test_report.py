"""The report: the eval table and a stages table in report.md, curves as PNG files."""

import json

from minisearch.eval.report import write_report
from minisearch.rundir import stage_folder


def test_report_from_the_files_the_stages_left(tmp_path):
    root = tmp_path / "run"
    with stage_folder(root / "dapo", {"x": 1}) as (tmp, counts):
        (tmp / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "k": 1 + s // 3, "reward": 0.1 * s, "answer": 0.05 * s, "format": 0.5,
                        "model_tokens": 40 - s, "searches": 1.0}) + "\n" for s in range(1, 7)))
        counts.update(steps=6)
    with stage_folder(root / "eval", {"y": 1}) as (tmp, counts):
        (tmp / "metrics.json").write_text(json.dumps({
            "setting": {"corpus": "toy", "passages": 5, "retriever": "whoosh BM25", "topk": 3, "max_turns": 4},
            "rows": [{"model": "base", "set": "ramp-dev", "n": 2, "format_ok": 0.5, "searches": 1.0,
                      "span_acc": 0.25, "span_recall": 0.5}]}))
    path = write_report(root)
    text = path.read_text()
    assert "| base | ramp-dev | 2 | 0.250 | 0.500 |" in text and "| dapo |" in text and "steps 6" in text
    pngs = sorted(p.name for p in (root / "plots").glob("*.png"))
    assert pngs == ["dapo-curriculum.png", "dapo-length.png", "dapo-reward.png"]
    assert all((root / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert "![dapo-reward](plots/dapo-reward.png)" in text
