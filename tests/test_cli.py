"""The command line as a user meets it: help, index build/search/info, errors, later stages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from minisearch.cli.main import main
from minisearch.pipeline.stages import KINDS


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_lists_every_command_and_imports_nothing_heavy():
    code = ("import sys; from click.testing import CliRunner; from minisearch.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); print(r.output); "
            "heavy = [m for m in ('whoosh', 'torch', 'bm25s', 'numpy', 'transformers') if m in sys.modules]; "
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    for name in [*KINDS, "export", "chat", "ask", "serve", "run", "show", "report"]:
        assert f"  {name} " in out
    assert "  model " not in out  # an old name: hidden, it only says the new one


@pytest.fixture
def corpus_file(tmp_path, passages):
    path = tmp_path / "passages.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in passages))
    return path


def test_index_build_search_info(tmp_path, corpus_file):
    out = tmp_path / "idx"
    result = run("index", "build", corpus_file, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "done.json").is_file() and not (tmp_path / "idx.tmp").exists()

    result = run("index", "search", out, "who founded Vethmora Holdings", "-k", "2")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("1. Vethmora Holdings") and "score" in first
    assert "founded in 1901" in result.output

    result = run("index", "search", out, "Velkaran", "--json")
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert hits[0]["id"] == "p1" and set(hits[0]) == {"id", "title", "text", "score"}

    result = run("index", "info", out)
    assert result.exit_code == 0 and "whoosh" in result.output and "passages: 6" in result.output


def test_index_build_default_out_and_bm25s(tmp_path, corpus_file):
    result = run("index", "build", corpus_file, "--search-backend", "bm25s")
    assert result.exit_code == 0, result.output
    out = tmp_path / "passages.jsonl.idx"
    assert out.is_dir()
    assert "1. Ostrivel" in run("index", "search", out, "Ostrivel city").output


def test_search_without_index_says_how_to_build(tmp_path):
    result = run("index", "search", tmp_path / "missing", "anything")
    assert result.exit_code == 2
    assert "no index at" in result.output and "minisearch index build" in result.output


def test_search_no_hits(tmp_path, corpus_file):
    run("index", "build", corpus_file, "--out", tmp_path / "idx")
    assert run("index", "search", tmp_path / "idx", "zzzz").output.strip() == "no hits"
