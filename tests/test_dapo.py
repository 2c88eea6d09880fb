"""DAPO on the tiny model: learning on an easy task, the curriculum, resume, and the CLI."""

from __future__ import annotations

import json
import random

import pytest
import torch
from click.testing import CliRunner  # noqa: E402
from helpers import adapter_weights, same_weights  # noqa: E402

from minisearch.agent.rollout import RolloutConfig  # noqa: E402
from minisearch.cli import main  # noqa: E402
from minisearch.jsonl import read_jsonl, write_jsonl  # noqa: E402
from minisearch.ramp.tasks import make_task  # noqa: E402
from minisearch.train.dapo import DapoConfig, run  # noqa: E402


@pytest.fixture(scope="module")
def ramp_tasks(toy_run, tmp_path_factory):
    """One- and two-mask RAMP tasks from the toy world."""
    _, world = toy_run
    rng, tasks = random.Random(0), []
    for i, passage in enumerate(world.passages[:80]):
        task, _ = make_task(passage, 1 + i % 2, rng)
        if task:
            tasks.append(task)
    path = tmp_path_factory.mktemp("dapo") / "tasks.jsonl"
    write_jsonl(path, tasks)
    return path


@pytest.fixture(scope="module")
def tags(toy_run) -> list[int]:
    """The protocol tags' token ids (8 of ~800 tokens)."""
    from transformers import AutoTokenizer

    from minisearch.agent.backends.cpu import tag_token_ids

    return sorted(tag_token_ids(AutoTokenizer.from_pretrained(toy_run.root / "model")))


@pytest.fixture(scope="module")
def writes_tags(tags):
    """An easy task for an untrained model: write any protocol tag."""
    tags = set(tags)

    def reward(task, traj):
        hit = float(any(i in tags for seg in traj.segments if seg.who == "model" for i in seg.token_ids))
        return {"reward": hit, "format": 0.0, "answer": hit}
    return reward


def config(toy_run, tasks, out, **kw):
    root, _ = toy_run
    base = dict(tasks=str(tasks), index=str(root / "index"), model=str(root / "model"), out=str(out), lora_rank=8,
                steps=6, batch_tasks=4, group=4, updates=2, lr=2e-2, promote_steps=2, save_every=1,
                rollout=RolloutConfig(max_turns=1, max_new_tokens=16, max_total_tokens=4096, temperature=1.0))
    return DapoConfig(**{**base, **kw})


def tag_chance(toy_run, tasks, tags, adapter=None) -> float:
    """The policy's probability that the first token it writes is a tag, averaged over the
    tasks' prompts: what `writes_tags` pays for, read off the model, not sampled."""
    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.agent.rollout import prompt_ids

    backend = CpuBackend(toy_run.root / "model", adapter=adapter)
    chances = []
    with torch.no_grad():
        for task in tasks:
            ids = prompt_ids(backend.tokenizer, task, max_turns=1)[0]
            logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1]  # (vocab,)
            chances.append(logits.softmax(-1)[tags].sum().item())
    return sum(chances) / len(chances)


def test_dapo_raises_the_reward_changes_the_adapter_and_promotes(toy_run, ramp_tasks, tags, writes_tags, tmp_path):
    out = run(config(toy_run, ramp_tasks, tmp_path / "dapo", steps=5, lr=1e-2), echo=lambda _: None,
              reward_fn=writes_tags)
    rows = list(read_jsonl(out / "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    # Learning, read off the policy rather than the logged rewards: a step's reward is ~20
    # samples, its noise (+-0.1) as large as five steps' gain (last two steps minus the first
    # fell below 0 on 3 of 20 seeds). The chance of a tag first, from 0.0104, rose on seeds
    # 0-19 by 2.1x at the least, 5.7x in the median, 17.8x at the most; a reward paying for
    # no tag drives it to 0.2x (lr 2e-2 is unstable: 0.03x to 58x; 5e-3 gains 1.0x to 2.5x).
    tasks = list(read_jsonl(ramp_tasks))[:16]
    before, after = tag_chance(toy_run, tasks, tags), tag_chance(toy_run, tasks, tags, out / "adapter")
    assert after > 1.5 * before, (before, after)
    assert [r["k"] for r in rows] == [1, 1, 2, 2, 2]  # two steps at k=1, then the last stage
    assert rows[0]["kept"] >= 1 and all(0 <= r["kept_fraction"] <= 1 for r in rows)
    weights = adapter_weights(out)
    assert any(name.endswith("lora_B.weight") and t.abs().sum() > 0 for name, t in weights.items())
    assert len(list((out / "samples").glob("step-*.md"))) == 5
    counts = json.loads((out / "done.json").read_text())["counts"]
    assert counts["final_stage_k"] == 2 and not (out / "checkpoint.pt").exists()


def test_a_killed_run_resumes_to_the_same_adapter(toy_run, ramp_tasks, writes_tags, tmp_path):
    cfg = dict(steps=3)
    whole = run(config(toy_run, ramp_tasks, tmp_path / "whole", **cfg), echo=lambda _: None, reward_fn=writes_tags)
    calls = {"n": 0}
    calls_in_two_steps = 4 * sum(r["generated"] for r in list(read_jsonl(whole / "metrics.jsonl"))[:2])

    def dies_in_step_3(task, traj):
        calls["n"] += 1
        if calls["n"] > calls_in_two_steps:
            raise KeyboardInterrupt
        return writes_tags(task, traj)

    with pytest.raises(KeyboardInterrupt):
        run(config(toy_run, ramp_tasks, tmp_path / "cut", **cfg), echo=lambda _: None, reward_fn=dies_in_step_3)
    assert (tmp_path / "cut.tmp" / "checkpoint.pt").is_file() and not (tmp_path / "cut").exists()
    lines = []
    resumed = run(config(toy_run, ramp_tasks, tmp_path / "cut", **cfg), echo=lines.append, reward_fn=writes_tags)
    assert any("resuming after step 2" in line for line in lines)
    assert [r["step"] for r in read_jsonl(resumed / "metrics.jsonl")] == [1, 2, 3]
    assert same_weights(adapter_weights(whole), adapter_weights(resumed), atol=1e-6)


def test_dapo_from_the_cli(toy_run, ramp_tasks, tmp_path):
    root, _ = toy_run
    r = CliRunner().invoke(main, [
        "dapo", str(ramp_tasks), "--index", str(root / "index"), "--model", str(root / "model"), "--out",
        str(tmp_path / "dapo"), "--steps", "1", "--batch-tasks", "2", "--group", "2", "--lora-rank", "4",
        "--max-turns", "1", "--max-new-tokens", "8", "--max-total-tokens", "4096", "--max-gen-rounds", "1",
        "--eval-tasks", str(ramp_tasks), "--eval-limit", "2"])
    assert r.exit_code == 0, r.output
    assert "dapo step 1/1" in r.output
    done = json.loads((tmp_path / "dapo" / "done.json").read_text())
    assert done["counts"]["eval_before"]["n"] == 2 and "span_acc" in done["counts"]["eval_after"]
    assert (tmp_path / "dapo" / "adapter" / "adapter_model.safetensors").is_file()
    r = CliRunner().invoke(main, ["dapo", str(tmp_path / "none.jsonl"), "--index", str(root / "index"), "--model",
                                  str(root / "model"), "--out", str(tmp_path / "x"), "--group", "1"])
    assert r.exit_code == 2 and "group=1: it must be at least 2" in r.output
    r = CliRunner().invoke(main, ["dapo", str(ramp_tasks), "--index", str(root / "index"), "--model",
                                  str(root / "model"), "--out", str(tmp_path / "x"), "--answer", "judge"])
    assert r.exit_code == 2 and "--judge-model" in r.output


def test_dapo_keeps_its_start_when_no_step_beats_it_on_its_validation_split(toy_run, ramp_tasks, writes_tags,
                                                                            tmp_path):
    """An untrained model fills no span, before or after: no check beats the start (a fresh
    LoRA, B = 0), so the stage hands on the start; without a validation split, the last."""
    kw = dict(steps=4, val_tasks=6, val_every=2, lr=2e-2)
    out = run(config(toy_run, ramp_tasks, tmp_path / "kept", **kw), echo=lambda _: None, reward_fn=writes_tags)
    counts = json.loads((out / "done.json").read_text())["counts"]
    assert counts["kept_step"] == 0 and [h["step"] for h in counts["val"]] == [0, 2, 4]
    weights = adapter_weights(out)
    assert all(t.abs().sum() == 0 for name, t in weights.items() if name.endswith("lora_B.weight"))
    assert any(name.endswith("lora_B.weight") for name in weights)
    rows = list(read_jsonl(out / "metrics.jsonl"))
    assert [r["step"] for r in rows if "val_score" in r] == [2, 4] and set(counts["dropped_by_k"]) <= {"k=1", "k=2"}
    assert not (out / "best").exists()
    last = run(config(toy_run, ramp_tasks, tmp_path / "last", **{**kw, "val_tasks": 0}), echo=lambda _: None,
               reward_fn=writes_tags)
    assert any(name.endswith("lora_B.weight") and t.abs().sum() > 0 for name, t in adapter_weights(last).items())
    tasks = list(read_jsonl(ramp_tasks))
    from minisearch.train.keeper import split_validation
    train, val = split_validation(tasks, 6, 0)
    assert len(val) == 6 and not {t["id"] for t in train} & {t["id"] for t in val} and len(train) + 6 == len(tasks)


def test_the_on_policy_ratio_is_one_before_the_first_update(toy_run, ramp_tasks, tmp_path):
    """pi_old, pi_ref and pi_theta are scored in one mode with dropout off: before the first
    optimiser step pi_theta / pi_old is 1 to 1e-5 on every loss token, here with an adapter that
    carries LoRA dropout (one trained elsewhere may), the KL term on and small micro-batches.
    Scored in eval mode for pi_old and train mode for pi_theta, as before, it was ~0.8 off."""
    from dataclasses import replace

    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.agent.rollout import rollout
    from minisearch.search import open_searcher
    from minisearch.train.dapo import Sample
    from minisearch.train.dapo_update import update

    root, _ = toy_run
    trained = CpuBackend(root / "model", lora_rank=8)
    with torch.no_grad():
        for name, p in trained.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    folder = trained.save_adapter(tmp_path / "adapter")
    config_path = folder / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "lora_dropout": 0.5}))
    backend = CpuBackend(root / "model", adapter=folder)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in backend.model.modules())
    cfg = config(toy_run, ramp_tasks, tmp_path / "out", kl_coef=0.1, micro_tokens=400, updates=2)
    tasks = list(read_jsonl(ramp_tasks))[:3]
    with open_searcher(root / "index") as searcher:
        trajs = rollout(tasks, backend.generate, searcher.search, backend.tokenizer, replace(cfg.rollout, group=2))
    by_id = {t["id"]: t for t in tasks}
    groups = [[Sample(by_id[t.task_id], t, {}, float(t.sample), False) for t in trajs if t.task_id == task["id"]]
              for task in tasks]
    params = [p for p in backend.model.parameters() if p.requires_grad]
    stats = update(backend, groups, cfg, torch.optim.AdamW(params, lr=1e-3))
    assert 0.0 <= stats["ratio_error"] < 1e-5, stats
