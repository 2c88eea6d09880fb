"""The warm-up teaches the random tiny model the corpus: loss falls, every weight moves."""

from __future__ import annotations

import json
import random

import pytest
import torch
import transformers
from click.testing import CliRunner  # noqa: E402

from minisearch.cli import main  # noqa: E402
from minisearch.errors import UserError  # noqa: E402
from minisearch.tiny.warmup import WarmupConfig, batch_rows, blocks, copy_exercise, run, token_stream  # noqa: E402


def loss_on(model, rows) -> float:
    """Mean next-token loss over fixed token rows (B, T + 1)."""
    with torch.no_grad():
        logits = model(input_ids=rows[:, :-1]).logits                 # (B, T, vocab)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten()).item()


def test_warmup_lowers_the_loss_and_changes_all_weights(toy_run, tmp_path):
    root, world = toy_run
    out = run(WarmupConfig(model=str(root / "model"), corpus="toyworld:200", out=str(tmp_path / "warm"), steps=150,
                           batch_size=8, seq_len=64, lr=5e-3, warmup_steps=5, copy_share=0.0), echo=lambda _: None)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 150
    before = transformers.AutoModelForCausalLM.from_pretrained(root / "model")
    after = transformers.AutoModelForCausalLM.from_pretrained(out)
    # The loss on the same 2,048 tokens before and after, of a world the warm-up never read
    # (it reads toyworld:200's seed 0, these are the fixture's seed 4): no batch's luck in it.
    # Warm-up seeds 0-4: 6.59 -> 4.37..4.89, a ratio of 0.66..0.74.
    tok = transformers.AutoTokenizer.from_pretrained(root / "model")
    cut = blocks(token_stream(tok, world.passages), 64)
    rows = torch.tensor(cut[::len(cut) // 32][:32])                   # (32, 65)
    first, last = loss_on(before, rows), loss_on(after, rows)
    assert last < 0.85 * first, (first, last)
    moved = [n for (n, a), (_, b) in zip(before.named_parameters(), after.named_parameters()) if not torch.equal(a, b)]
    still = {n for n, _ in before.named_parameters()} - set(moved)  # all weights train, not an adapter,
    assert still <= {f"model.layers.0.self_attn.{p}_proj.{w}" for p in "kv" for w in ("weight", "bias")}, still
    # but those wholly the copy head's (layer 0's keys and values; weight decay moves the nonzero ones)
    done = json.loads((out / "done.json").read_text())
    assert done["counts"]["final_loss"] < done["counts"]["first_loss"]
    assert transformers.AutoTokenizer.from_pretrained(out)("river")["input_ids"]


def test_blocks_cut_the_token_stream(toy_run):
    root, world = toy_run
    tok = transformers.AutoTokenizer.from_pretrained(root / "model")
    cut = blocks(token_stream(tok, world.passages[:20]), 32)
    assert cut and all(len(b) == 33 for b in cut)
    assert cut[0][32] == cut[1][0]  # consecutive blocks share their boundary token (inputs and targets)


def test_errors(toy_run, tmp_path):
    root, _ = toy_run
    with pytest.raises(UserError, match="init --corpus"):  # the cpu backend names the command
        run(WarmupConfig(model=str(tmp_path / "none"), corpus="toyworld:60", out=str(tmp_path / "w")))
    with pytest.raises(UserError, match="too small"):
        run(WarmupConfig(model=str(root / "model"), corpus="toyworld:60", out=str(tmp_path / "w"), seq_len=1024,
                         batch_size=64))
    result = CliRunner().invoke(main, ["warmup", "--model", str(root / "model"), "--corpus", "toyworld:60",
                                       "--out", str(tmp_path / "w2"), "--steps", "3", "--batch-size", "2"])
    assert result.exit_code == 0 and "warm-up step 3/3" in result.output


@pytest.mark.parametrize("share, low, high", [(0.0, 0, 0), (1.0, 400, 400), (0.5, 150, 250)])
def test_a_share_of_the_batch_rows_are_copy_exercises(share, low, high):
    data = [list(range(i * 100, i * 100 + 65)) for i in range(50)]  # blocks of distinct tokens, none repeats
    rng = random.Random(0)
    rows = [r for _ in range(50) for r in batch_rows(data, rng, 8, share, tokens=list(range(5000, 5100)))]
    copies = sum(len(set(r)) < len(r) for r in rows)
    assert all(len(r) == 65 for r in rows) and low <= copies <= high


def test_a_copy_exercise_is_predictable_only_by_copying():
    rng, block, tokens = random.Random(1), list(range(200)), list(range(1000, 1300))
    kinds = set()
    for _ in range(40):
        row = copy_exercise(block, rng, tokens)
        assert len(row) == len(block)
        if row[0] >= 1000:  # random tokens repeating with a period
            period = next(p for p in range(6, 41) if row[p:] == row[:-p])
            assert row[:period] == row[period:2 * period]
            kinds.add("period")
        else:  # the block with its own spans written again: every token is from the block, some twice
            assert set(row) <= set(block) and len(set(row)) < len(row)
            kinds.add("splice")
    assert kinds == {"period", "splice"}
