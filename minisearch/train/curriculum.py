"""The curriculum over the number of masks: which tasks the next RL batch is drawn from.

    cur = Curriculum.from_tasks(tasks, mode="staged", promote_steps=20, promote_reward=0.6)
    batch = cur.sample(rng, 8)        # tasks of the current stage
    cur.update(mean_reward)           # after each step: maybe move to the next stage

`staged` (the paper's): one stage per mask count k = 1, 2, 3, 4 (those present), starting at
the lowest; a stage ends after `promote_steps` steps or as soon as the mean reward over its
last `window` steps reaches `promote_reward`, whichever comes first (0 turns a rule off).
`mixed` (the ablation): one stage with every task. QA tasks have no mask count: they form a
single stage, so the same object drives downstream RL. The state (stage, steps in it, recent
rewards) is a small dict, saved with each checkpoint so a resumed run continues the schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

MODES = ("staged", "mixed")


def mask_count(task: dict) -> int:
    """A RAMP task's number of masks; 0 for a QA task."""
    return int((task.get("metadata") or {}).get("mask_num", 0) or 0)


@dataclass
class Curriculum:
    stages: list[tuple[int, list[dict]]]   # (k, tasks) in training order; k = 0 for QA / mixed
    promote_steps: int = 0
    promote_reward: float = 0.0
    window: int = 3
    stage: int = 0
    steps_in_stage: int = 0
    recent: list[float] = field(default_factory=list)

    @classmethod
    def from_tasks(cls, tasks: list[dict], mode: str = "staged", **rules) -> Curriculum:
        if mode not in MODES:
            raise ValueError(f"curriculum mode {mode!r} is not one of {', '.join(MODES)}")
        if not tasks:
            raise ValueError("a curriculum needs tasks")
        counts = sorted({mask_count(t) for t in tasks})
        if mode == "mixed" or counts == [0]:
            return cls([(0, list(tasks))], **rules)
        return cls([(k, [t for t in tasks if mask_count(t) == k]) for k in counts], **rules)

    @property
    def k(self) -> int:
        """The current stage's mask count (0 when mixed or QA)."""
        return self.stages[self.stage][0]

    @property
    def tasks(self) -> list[dict]:
        return self.stages[self.stage][1]

    def sample(self, rng: random.Random, n: int) -> list[dict]:
        """n tasks of the current stage (without repeats while the stage has enough)."""
        pool = self.tasks
        return rng.sample(pool, n) if n <= len(pool) else [rng.choice(pool) for _ in range(n)]

    def update(self, mean_reward: float) -> bool:
        """Record one step's mean reward; True when this step promoted to the next stage."""
        self.steps_in_stage += 1
        self.recent = (self.recent + [mean_reward])[-self.window:]
        if self.stage == len(self.stages) - 1:
            return False
        by_steps = self.promote_steps > 0 and self.steps_in_stage >= self.promote_steps
        by_reward = (self.promote_reward > 0 and len(self.recent) == self.window
                     and sum(self.recent) / self.window >= self.promote_reward)
        if by_steps or by_reward:
            self.stage, self.steps_in_stage, self.recent = self.stage + 1, 0, []
            return True
        return False

    def state(self) -> dict:
        return {"stage": self.stage, "steps_in_stage": self.steps_in_stage, "recent": list(self.recent)}

    def load_state(self, state: dict) -> None:
        self.stage, self.steps_in_stage = state["stage"], state["steps_in_stage"]
        self.recent = list(state["recent"])
