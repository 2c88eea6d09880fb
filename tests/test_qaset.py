"""QA sets: local JSONL always, the paper's sets by name from the cache (offline: a clear error),
FreshQA's CSV, and the qaset stage."""

import json

import pytest

from minisearch.errors import UserError
from minisearch.eval.qaset import QaSetConfig, load_set, run


def test_local_jsonl_and_its_problems(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Q?", "golden_answers": ["x"]}) + "\n"
                    + json.dumps({"question": "R?", "golden_answers": ["y"]}) + "\n")
    rows = load_set(str(path))
    assert [r["id"] for r in rows] == ["a", "qa-2"] and load_set(str(path), limit=1) == rows[:1]
    path.write_text(json.dumps({"id": "a", "question": "Q?", "golden_answers": []}) + "\n")
    with pytest.raises(UserError, match="task 1 needs a `question` and a non-empty `golden_answers`"):
        load_set(str(path))
    with pytest.raises(UserError, match="hotpotqa, fanoutqa"):
        load_set(str(tmp_path / "missing.jsonl"))


def test_named_sets_come_from_the_cache_or_fail_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("MINISEARCH_CACHE", str(tmp_path))
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "bamboogle-test.jsonl").write_text(
        json.dumps({"id": "b1", "question": "Who?", "golden_answers": ["Ann"]}) + "\n")
    assert load_set("bamboogle")[0]["golden_answers"] == ["Ann"]
    import minisearch.eval.qaset as qaset

    def offline(name, split):
        raise ConnectionError("no network")
    monkeypatch.setattr(qaset, "flashrag", offline)
    with pytest.raises(UserError, match=r"could not download musique.*Offline\?.*musique-dev.jsonl"):
        load_set("musique")
    with pytest.raises(UserError, match="freshqa:PATH"):
        load_set("freshqa")


def test_freshqa_csv_with_note_rows_before_the_header(tmp_path):
    path = tmp_path / "fresh.csv"
    path.write_text("FreshQA v1,,,\nnotes here,,,\nid,split,question,answer_0,answer_1\n"
                    "7,TEST,Who leads X?,Ann Lee,Ann\n8,TEST,Empty?,,\n")
    rows = load_set(f"freshqa:{path}")
    assert rows == [{"id": "7", "question": "Who leads X?", "golden_answers": ["Ann Lee", "Ann"],
                     "metadata": {"set": "freshqa", "split": "TEST"}}]


def test_qaset_stage_writes_tasks(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "question": f"Q{i}?", "golden_answers": ["a"]}) + "\n"
                           for i in range(5)))
    out = run(QaSetConfig(out=str(tmp_path / "qa"), set=str(src), limit=3))
    assert len((out / "tasks.jsonl").read_text().splitlines()) == 3 and (out / "done.json").is_file()
