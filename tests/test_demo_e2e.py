"""The demo recipe end to end, reduced to CI size (slow-marked; .ci/run runs it): once straight
through, once killed (SIGKILL) inside sft and again inside dapo and rerun each time. The
resumed run ends with the same adapters and the same eval table as the straight one."""

import json
import signal

import pytest
from helpers import RECIPES, adapter_weights, run_recipe_process, same_weights

pytestmark = pytest.mark.slow

SMALL = ["world.size=300", "warmup.steps=60", "ramp.per_passage=1", "traj.limit=120", "sft.max_steps=12",
         "sft.save_steps=4", "dapo.steps=4", "dapo.save_every=2", "dapo.batch_tasks=2", "dapo.group=2",
         "dapo.val_tasks=8", "qa-traj.limit=40", "qa-sft.max_steps=4", "qa-alone.max_steps=4", "eval.limit=6"]


def demo(out, kill_at: str | None = None) -> tuple[int, str]:
    """Run the reduced demo; with `kill_at`, SIGKILL it when a line containing it appears."""
    return run_recipe_process(RECIPES / "demo.yaml", out, SMALL, kill_at)


def test_demo_resumes_after_kills_and_ends_like_a_straight_run(tmp_path):
    code, log = demo(tmp_path / "straight")
    assert code == 0, log[-3000:]
    straight = tmp_path / "straight"
    table = (straight / "eval" / "table.md").read_text()
    for label in ("RAG-PE (base)", "| base |", "ramp-sft", "ramp-dapo", "qa-sft", "qa-alone"):
        assert label in table
    assert "## Curves" in (straight / "report.md").read_text()

    cut = tmp_path / "cut"
    code, log = demo(cut, kill_at="sft step 6/")
    assert code == -signal.SIGKILL and (cut / "sft.tmp" / "checkpoints").is_dir(), log[-3000:]
    code, log = demo(cut, kill_at="dapo step 3/")
    assert code == -signal.SIGKILL, log[-3000:]
    assert "warmup: complete, skipped" in log and "resuming from" in log  # sft went on from its checkpoint
    code, log = demo(cut)
    assert code == 0, log[-3000:]
    assert "dapo: resuming after step 2" in log and "sft: complete, skipped" in log

    for stage in ("sft", "dapo", "qa-sft"):
        assert same_weights(adapter_weights(straight / stage), adapter_weights(cut / stage), atol=1e-6), stage
    rows = [json.loads((root / "eval" / "metrics.json").read_text())["rows"] for root in (straight, cut)]
    assert rows[0] == rows[1]
