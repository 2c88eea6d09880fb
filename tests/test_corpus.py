"""The corpus stage: every input form, bad lines named by file and line, strict mode, the CLI."""

from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

from minisearch.cli import main
from minisearch.data.corpus import CorpusConfig, CorpusReport, iter_passages, run
from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl
from minisearch.rundir import read_done

BAD_JSONL = "\n".join([
    json.dumps({"id": "a", "contents": "Alpha\nThe first passage."}),
    "{not json",
    json.dumps({"id": "b", "title": "Beta", "text": "The second passage."}),
    json.dumps({"id": "c", "contents": "Gamma\n   "}),
    json.dumps({"id": "a", "contents": "Alpha again\nA duplicate."}),
    json.dumps(["a", "list"]),
    "",
    json.dumps({"title": "No id", "text": "Has no id."}),
    json.dumps({"id": 7, "text": "An integer id and no title."}),
    json.dumps({"id": "d"}),
]) + "\n"


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(BAD_JSONL)
    return path


def test_jsonl_forms_and_bad_lines(bad_file):
    report = CorpusReport()
    got = list(iter_passages(str(bad_file), report=report))
    assert got == [{"id": "a", "contents": "Alpha\nThe first passage."},
                   {"id": "b", "contents": "Beta\nThe second passage."},
                   {"id": "7", "contents": "\nAn integer id and no title."}]
    assert report.read == 9 and report.kept == 3
    assert dict(report.skipped) == {"bad_json": 2, "empty_text": 1, "duplicate_id": 1, "no_id": 1, "no_text": 1}
    joined = "\n".join(report.problems)
    for line, words in [(2, "bad JSON"), (4, "empty text"), (5, "duplicate id 'a' (first at"),
                        (6, "expected a JSON object"), (8, "no string \"id\""), (10, "no \"contents\"")]:
        assert f"{bad_file}:{line}: {words}" in joined, (line, joined)
    assert "skipped:" in report.summary()


def test_strict_stops_at_the_first_bad_line(bad_file):
    with pytest.raises(UserError, match=r"mixed\.jsonl:2: bad JSON"):
        list(iter_passages(str(bad_file), strict=True))


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"id": "z", "contents": "Zed\nzipped"}) + "\n")
    assert [p["id"] for p in iter_passages(str(path))] == ["z"]


def test_folder_of_documents(tmp_path):
    docs = tmp_path / "notes"
    (docs / "sub").mkdir(parents=True)
    sentence = "Quorvelle reads the ledger every morning before the market opens. "
    (docs / "long.txt").write_text(sentence * 40)  # 400 words
    (docs / "sub" / "guide.md").write_text(
        "# Setup\nInstall the **tool** with [pip](https://x).\n\n```\ncode is dropped\n```\n"
        "## Usage\nRun it daily. It prints a table.\n")
    (docs / "extra.jsonl").write_text(json.dumps({"id": "j1", "contents": "J\nfrom jsonl"}) + "\n")
    (docs / "image.png").write_bytes(b"\x89PNG")
    report = CorpusReport()
    got = {p["id"]: p["contents"] for p in iter_passages(str(docs), report=report, passage_words=100)}
    txt = [v for k, v in got.items() if k.startswith("long.txt#")]
    assert len(txt) == 4
    for contents in txt:
        title, text = contents.split("\n", 1)
        assert title == "long" and 50 <= len(text.split()) <= 110
        assert text.endswith("opens.")  # whole sentences only
    assert got["sub/guide.md#1"] == "guide: Setup\nInstall the tool with pip."
    assert got["sub/guide.md#2"] == "guide: Usage\nRun it daily. It prints a table."
    assert got["j1"] == "J\nfrom jsonl"
    assert report.skipped["ignored_files"] == 1


def test_unreadable_text_file(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe not utf8 \xff")
    (tmp_path / "ok.txt").write_text("Fine text here.")
    report = CorpusReport()
    assert [p["id"] for p in iter_passages(str(tmp_path), report=report)] == ["ok.txt#1"]
    assert report.skipped["unreadable"] == 1 and "bad.txt" in report.problems[0]


def test_toyworld_source():
    got = list(iter_passages("toyworld:80"))
    assert len(got) == 160 and got[0]["id"].startswith("river-")  # a lead and a records passage per entity
    with pytest.raises(UserError, match="number"):
        list(iter_passages("toyworld:many"))


def test_missing_source_names_what_is_accepted(tmp_path):
    with pytest.raises(UserError, match="no such file or folder.*toyworld"):
        list(iter_passages(str(tmp_path / "nope")))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(UserError, match="unsupported file type"):
        list(iter_passages(str(tmp_path / "x.csv")))


def test_hf_source_offline_gives_a_clear_error():
    pytest.importorskip("datasets")
    with pytest.raises(UserError, match="Is this machine online"):
        list(iter_passages("hf:wiki18"))


def test_run_writes_the_stage_folder(tmp_path, bad_file):
    out = run(CorpusConfig(source=str(bad_file), out=str(tmp_path / "corpus")))
    assert [p["id"] for p in read_jsonl(out / "passages.jsonl")] == ["a", "b", "7"]
    done = read_done(out)
    assert done["counts"] == {"passages": 3, "read": 9, "skipped": 6}
    assert json.loads((out / "report.json").read_text())["skipped"]["bad_json"] == 2
    assert not (tmp_path / "corpus.tmp").exists()


def test_run_with_nothing_usable_fails_and_leaves_no_stage(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{broken\n")
    with pytest.raises(UserError, match="no usable passages"):
        run(CorpusConfig(source=str(empty), out=str(tmp_path / "corpus")))
    assert not (tmp_path / "corpus").exists()


def test_cli(tmp_path, bad_file):
    runner = CliRunner()
    result = runner.invoke(main, ["corpus", str(bad_file), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "kept 3 passages" in result.output and f"{bad_file}:2: bad JSON" in result.output
    result = runner.invoke(main, ["corpus", str(bad_file), "--out", str(tmp_path / "d"), "--strict"])
    assert result.exit_code == 2 and "mixed.jsonl:2" in result.output and "--strict" in result.output
    result = runner.invoke(main, ["corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
