"""SFT: labels only on model-written tokens; training lowers the loss and changes the adapter;
an interrupted run resumes from its checkpoint and ends where an uninterrupted one does."""

from __future__ import annotations

import json

import pytest
import transformers  # noqa: F401  (a required dependency: a broken install fails here)
from helpers import adapter_weights, same_weights  # noqa: E402

from minisearch.agent.rollout import from_record, render, to_record  # noqa: E402
from minisearch.errors import UserError  # noqa: E402
from minisearch.jsonl import read_jsonl, write_jsonl  # noqa: E402
from minisearch.records import passage_titles  # noqa: E402
from minisearch.train import sft  # noqa: E402
from minisearch.train.rewards import Outcome  # noqa: E402
from minisearch.train.teachers import TeachConfig, teach  # noqa: E402
from minisearch.train.teachers.scripted import ScriptedTeacher  # noqa: E402
from minisearch.train.traj import judge  # noqa: E402


@pytest.fixture(scope="module")
def trajectories(toy_env, tmp_path_factory):
    """Accepted scripted-teacher trajectories for one-hop toy questions, as a JSONL file."""
    world, searcher, tok, _ = toy_env
    cfg = TeachConfig(words_per_hit=30)
    tasks = [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"][:48]
    trajs = teach(tasks, ScriptedTeacher(cfg, passage_titles(world.passages)), searcher.search, tok, cfg)
    records = [to_record(traj, task, cfg.max_turns, "scripted") for traj, task in zip(trajs, tasks)
               if judge(task, Outcome.of(traj), 0.8)[0]]
    path = tmp_path_factory.mktemp("traj") / "round-0.jsonl"
    write_jsonl(path, records)
    return path


@pytest.mark.parametrize("micro_tokens", [1, 700, 100_000])
def test_the_micro_batched_loss_and_gradients_equal_the_models_own(toy_run, trajectories, micro_tokens):
    """The SFT step scores only the targets, from hidden states, micro-batch by micro-batch;
    with LoRA and embedding weights moved away from their start, its loss and gradients equal
    those of the model's own full-logits loss over the whole batch, for any micro-batch size
    (1 token: one sequence at a time)."""
    import torch

    from minisearch.agent.backends.cpu import CpuBackend

    backend = CpuBackend(toy_run.root / "model", lora_rank=4)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in backend.model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))  # LoRA B starts at zero: make it count
    rows, _ = sft.examples(backend.tokenizer, list(read_jsonl(trajectories))[:4], max_len=4096)
    batch = sft.collate(backend.tokenizer.pad_token_id)(rows)
    params = [p for p in backend.model.parameters() if p.requires_grad]
    full = backend.model(**batch).loss
    full.backward()
    expected = [p.grad.clone() for p in params]
    backend.model.zero_grad()
    targets = int((batch["labels"][:, 1:] != -100).sum())
    out = sft.batch_backward(backend, batch, targets, micro_tokens)
    assert out["loss"] == pytest.approx(full.item(), rel=1e-5)
    assert out["targets"] == targets and 0 <= out["hits"] <= targets
    for p, g in zip(params, expected):  # float32 sums in another order: within 1e-5 of the gradient's scale
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-5 * float(g.abs().max())), float((p.grad - g).abs().max())


def test_labels_are_the_model_tokens_only(toy_env, trajectories):
    tok = toy_env[2]
    records = list(read_jsonl(trajectories))
    rows, skipped = sft.examples(tok, records, max_len=4096)
    assert len(rows) == len(records) and not skipped
    for row, record in zip(rows, records):
        ids, mask = render(from_record(tok, record))
        assert row["input_ids"] == ids
        targets = [t for t in row["labels"] if t != -100]
        model_text = "".join(t["text"] for t in record["turns"] if t["who"] == "model")
        assert tok.decode(targets) == model_text  # every model token, and nothing else
        assert "<information>" not in tok.decode(targets)
    short, skipped = sft.examples(tok, records, max_len=50)
    assert not short and skipped["too_long"] == len(records)


def config(toy_run, data, out, **kw):
    defaults = dict(lora_rank=8, lr=5e-3, max_steps=8, batch_size=4, save_steps=4, seed=0)
    return sft.SftConfig(data=str(data), model=str(toy_run.root / "model"), out=str(out), **{**defaults, **kw})


def test_sft_lowers_the_loss_and_changes_the_adapter(toy_run, trajectories, tmp_path):
    import torch

    out = sft.run(config(toy_run, trajectories.parent, tmp_path / "sft", max_steps=40), echo=lambda *_: None)
    done = json.loads((out / "done.json").read_text())["counts"]
    history = list(read_jsonl(out / "metrics.jsonl"))
    assert [h["step"] for h in history] == list(range(1, 41))
    first = sum(h["loss"] for h in history[:4]) / 4
    last = sum(h["loss"] for h in history[-4:]) / 4
    assert last < 0.8 * first, (first, last)
    assert history[-1]["token_acc"] > history[0]["token_acc"]
    lora_b = [w for k, w in adapter_weights(out).items() if "lora_B" in k]
    assert lora_b and any(torch.count_nonzero(w) > 0 for w in lora_b)  # B starts at zero
    assert done["steps"] == 40 and not (out / "checkpoints").exists()


def test_interrupted_sft_resumes_from_its_checkpoint(toy_run, trajectories, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    whole = sft.run(config(toy_run, trajectories, tmp_path / "whole"), echo=lambda *_: None)

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise KeyboardInterrupt

    make = sft.make_trainer

    def killed_at_6(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.add_callback(Kill())
        return trainer
    monkeypatch.setattr(sft, "make_trainer", killed_at_6)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        sft.run(config(toy_run, trajectories, out), echo=lambda *_: None)
    assert not out.exists() and (tmp_path / "resumed.tmp" / "checkpoints" / "checkpoint-4").is_dir()
    monkeypatch.setattr(sft, "make_trainer", make)
    lines = []
    sft.run(config(toy_run, trajectories, out), echo=lines.append)
    assert any("resuming from" in line and "checkpoint-4" in line for line in lines)
    counts = json.loads((out / "done.json").read_text())["counts"]
    assert counts["steps"] == 8 and counts["resumed_from"].endswith("checkpoint-4")
    steps = [h["step"] for h in read_jsonl(out / "metrics.jsonl")]
    assert steps == list(range(1, 9))  # steps 5-6 of the killed attempt are logged once, by the resumed run
    assert same_weights(adapter_weights(whole), adapter_weights(out), atol=1e-5)


def test_missing_data_says_how_to_make_it(toy_run, trajectories, tmp_path):
    with pytest.raises(UserError, match="minisearch traj"):
        sft.run(config(toy_run, tmp_path / "nothing", tmp_path / "out"))
    with pytest.raises(UserError, match="--eval-tasks FILE --index DIR"):
        sft.run(config(toy_run, trajectories, tmp_path / "out", eval_tasks=str(trajectories)))


def test_warmup_ratio_is_a_share_below_one(toy_run, tmp_path):
    """transformers reads warmup_steps >= 1 as a step count: a ratio of 1 or more is refused."""
    assert config(toy_run, tmp_path, tmp_path / "out", warmup_ratio=0.5).warmup_ratio == 0.5
    with pytest.raises(UserError, match="warmup_ratio=1.5: a share of the steps, below 1"):
        config(toy_run, tmp_path, tmp_path / "out", warmup_ratio=1.5)


def test_data_may_list_several_trajectory_sources(tmp_path):
    write_jsonl(tmp_path / "ramp" / "round-0.jsonl", [{"task_id": "r0"}])
    write_jsonl(tmp_path / "ramp" / "round-1.jsonl", [{"task_id": "r1"}])
    write_jsonl(tmp_path / "qa.jsonl", [{"task_id": "q0"}])
    files = sft.trajectory_files([str(tmp_path / "qa.jsonl"), str(tmp_path / "ramp")])
    assert [f.name for f in files] == ["qa.jsonl", "round-0.jsonl", "round-1.jsonl"]
    with pytest.raises(UserError, match="no trajectories at .*missing"):
        sft.trajectory_files([str(tmp_path / "ramp"), str(tmp_path / "missing")])
