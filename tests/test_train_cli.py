"""ramp -> traj -> sft from the command line on the toy world, as a user runs them."""

from __future__ import annotations

import json

import pytest
import torch
import transformers  # noqa: F401  (a required dependency: a broken install fails here)
from click.testing import CliRunner  # noqa: E402
from helpers import adapter_weights  # noqa: E402

from minisearch.cli import main  # noqa: E402
from minisearch.jsonl import read_jsonl, write_jsonl  # noqa: E402


def test_ramp_traj_sft_from_the_cli(toy_run, tmp_path):
    root, world = toy_run
    write_jsonl(tmp_path / "passages.jsonl", world.passages)
    run = CliRunner().invoke
    r = run(main, ["ramp", str(tmp_path / "passages.jsonl"), "--index", str(root / "index"), "--out",
                   str(tmp_path / "ramp"), "--dev-fraction", "0.1", "--k-weights", "0.7,0.3,0,0"])
    assert r.exit_code == 0, r.output
    r = run(main, ["traj", str(tmp_path / "ramp" / "train.jsonl"), "--index", str(root / "index"), "--model",
                   str(root / "model"), "--out",
                   str(tmp_path / "traj"), "--answer-form", "spans"])
    assert r.exit_code == 0, r.output
    assert "accepted" in r.output
    stats = json.loads((tmp_path / "traj" / "stats.json").read_text())
    rows = list(read_jsonl(tmp_path / "traj" / "round-0.jsonl"))
    assert stats[0]["accepted"] == len(rows) > 10 and all(row["reward"]["all_spans"] == 1.0 for row in rows)
    r = run(main, ["sft", str(tmp_path / "traj"), "--model", str(root / "model"), "--out", str(tmp_path / "sft"),
                   "--max-steps", "3", "--batch-size", "4", "--lora-rank", "4", "--eval-tasks",
                   str(tmp_path / "ramp" / "dev.jsonl"), "--index", str(root / "index"), "--eval-limit", "3"])
    assert r.exit_code == 0, r.output
    counts = json.loads((tmp_path / "sft" / "done.json").read_text())["counts"]
    assert counts["steps"] == 3 and counts["eval_before"]["n"] == 3 and "span_acc" in counts["eval_after"]
    assert (tmp_path / "sft" / "adapter" / "adapter_model.safetensors").is_file()
    r = run(main, ["sft", str(tmp_path / "traj"), str(tmp_path / "traj" / "round-0.jsonl"), "--model",
                   str(root / "model"), "--out", str(tmp_path / "sft2"), "--adapter", str(tmp_path / "sft" / "adapter"),
                   "--no-train-embeddings", "--max-steps", "2",
                   "--batch-size", "4", "--lora-rank", "4"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "sft2" / "done.json").read_text())["counts"]["trajectories"] == 2 * len(rows)
    first, second = (adapter_weights(tmp_path / d) for d in ("sft", "sft2"))
    embeddings = [k for k in first if "embed_tokens" in k]
    assert embeddings and all(torch.equal(first[k], second[k]) for k in embeddings)  # kept as the adapter had them
    assert any(not torch.equal(first[k], second[k]) for k in first if "lora_" in k)  # while LoRA trained on
    r = run(main, ["sft", str(tmp_path / "nothing"), "--model", str(root / "model"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "minisearch traj" in r.output


def test_self_evolving_round_trains_a_student_and_logs_its_acceptance(toy_run, tmp_path):
    from minisearch.train.teachers import TeachConfig
    from minisearch.train.traj import TrajConfig, run

    root, world = toy_run
    write_jsonl(tmp_path / "qa.jsonl", [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"])
    write_jsonl(tmp_path / "passages.jsonl", world.passages)
    out = run(TrajConfig(tasks=str(tmp_path / "qa.jsonl"), index=str(root / "index"), out=str(tmp_path / "traj"),
                         corpus=str(tmp_path / "passages.jsonl"), limit=24, rounds=2, round_tasks=6,
                         model=str(root / "model"), student_steps=2, teach=TeachConfig(words_per_hit=30)),
              echo=lambda *_: None)
    stats = json.loads((out / "stats.json").read_text())
    assert [s["round"] for s in stats] == [0, 1] and stats[1]["who"] == "student-1" and stats[1]["tasks"] == 6
    assert stats[1]["pool"] == stats[0]["pool"] + stats[1]["accepted"]
    assert sum(stats[1]["ends"].values()) == 6  # the student itself ran every fresh task to an end
    assert all(row["teacher"] == "student-1" and row["reward"]["f1"] >= 0.8
               for row in read_jsonl(out / "round-1.jsonl"))
    assert (out / "round-1.jsonl").is_file() and (out / "student-1" / "sft" / "adapter").is_dir()


def test_a_killed_teacher_round_resumes_without_redoing_tried_tasks(toy_run, tmp_path, monkeypatch):
    import minisearch.train.traj as traj
    from minisearch.train.teachers import TeachConfig

    root, world = toy_run
    write_jsonl(tmp_path / "qa.jsonl", [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"][:40])
    write_jsonl(tmp_path / "passages.jsonl", world.passages)

    def cfg(out):
        return traj.TrajConfig(tasks=str(tmp_path / "qa.jsonl"), index=str(root / "index"), out=str(tmp_path / out),
                               corpus=str(tmp_path / "passages.jsonl"), batch=8, model=str(root / "model"),
                               teach=TeachConfig(words_per_hit=30))

    real, taught = traj.teach, []

    def killed_at_third_batch(tasks, *args):
        if len(taught) == 16:
            raise KeyboardInterrupt  # as a kill between two batches
        taught.extend(t["id"] for t in tasks)
        return real(tasks, *args)

    monkeypatch.setattr(traj, "teach", killed_at_third_batch)
    with pytest.raises(KeyboardInterrupt):
        traj.run(cfg("traj"), echo=lambda *_: None)
    log = tmp_path / "traj.tmp" / "attempts-0.jsonl"
    before = [r["task_id"] for r in read_jsonl(log)]
    assert before == taught and len(before) == 16
    with log.open("ab") as f:
        f.write(b'{"task_id": "half-writ')  # the kill came mid-line

    again: list[str] = []
    monkeypatch.setattr(traj, "teach", lambda tasks, *a: again.extend(t["id"] for t in tasks) or real(tasks, *a))
    lines = []
    traj.run(cfg("traj"), echo=lines.append)
    assert len(again) == 24 and not set(again) & set(before)  # only the tasks not tried before the kill
    assert any("16 of 40 tasks" in line for line in lines)
    monkeypatch.setattr(traj, "teach", real)
    traj.run(cfg("whole"), echo=lambda *_: None)  # the same round, never killed
    resumed, whole = (list(read_jsonl(tmp_path / d / "round-0.jsonl")) for d in ("traj", "whole"))
    assert resumed == whole and len(whole) > 10


def test_a_progress_log_survives_a_half_written_line(tmp_path):
    from minisearch.errors import UserError
    from minisearch.jsonl import append_jsonl, read_log

    log = tmp_path / "log.jsonl"
    assert read_log(log) == []
    with log.open("a") as f:
        append_jsonl(f, [{"a": 1}, {"a": 2}])
    log.write_bytes(log.read_bytes() + b'{"a": 3')  # killed mid-write
    assert read_log(log) == [{"a": 1}, {"a": 2}] and log.read_bytes().endswith(b'{"a": 2}\n')
    with log.open("a") as f:
        append_jsonl(f, [{"a": 3}])
    assert read_log(log) == [{"a": 1}, {"a": 2}, {"a": 3}]
    log.write_bytes(b'{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(UserError, match="log.jsonl:2: damaged"):
        read_log(log)


def test_a_round_that_accepts_nothing_stops_unless_allowed_and_sft_names_the_empty_data(toy_run, passages,
                                                                                        tmp_path):
    """The scripted teacher over an index of other passages finds no answer: the stage refuses
    to finish empty, finishes with `allow_empty` (its stats say 0 accepted), and an SFT stage
    given only that folder says its data is empty before loading a model."""
    import minisearch.train.sft as sft
    import minisearch.train.traj as traj
    from minisearch.errors import UserError
    from minisearch.search import build_index

    root, world = toy_run
    build_index(passages, tmp_path / "other-index")
    write_jsonl(tmp_path / "qa.jsonl", [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"][:8])
    write_jsonl(tmp_path / "passages.jsonl", world.passages)

    def cfg(out, **kw):
        return traj.TrajConfig(tasks=str(tmp_path / "qa.jsonl"), index=str(tmp_path / "other-index"),
                               out=str(tmp_path / out), model=str(root / "model"),
                               corpus=str(tmp_path / "passages.jsonl"), **kw)

    with pytest.raises(UserError, match="no trajectory was accepted; look at the teacher's answers"):
        traj.run(cfg("strict"), echo=lambda *_: None)
    traj.run(cfg("empty", allow_empty=True), echo=lambda *_: None)
    stats = json.loads((tmp_path / "empty" / "stats.json").read_text())[0]
    assert stats["accepted"] == 0 and stats["tasks"] == 8
    with pytest.raises(UserError, match="no trajectories in .*allow_empty"):
        sft.run(sft.SftConfig(data=str(tmp_path / "empty"), model="no-such-model", out=str(tmp_path / "sft")))
