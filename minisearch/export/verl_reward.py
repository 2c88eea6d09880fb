"""veRL's custom reward entry point: minisearch's own reward on veRL's rollouts.

    custom_reward_function.path=$(python -c "import minisearch.export.verl_reward as m; print(m.__file__)")
    custom_reward_function.name=compute_score

veRL's reward manager calls `compute_score(data_source=, solution_str=, ground_truth=,
extra_info=)` with the decoded response (special tokens skipped). The score is
`minisearch.train.rewards.reward_parts` with the weights the export wrote into
`extra_info["reward"]`, divided by their sum: 1 for a well-formed answer that is right
(every mask filled for RAMP, full recall for QA), 0 for a malformed output or one without
the search the recipe asks for, the format weight's share for a well-formed wrong answer.
The division changes nothing DAPO sees (advantages are normalised per group) and puts
the score on veRL's usual 0..1 scale. An LLM judge does not run inside a reward worker:
`answer: judge` is scored by its fallback metric.

veRL renders the search tool's results as a tool message through the chat template, so
the response holds the template's role lines and `<tool_response>` tags around each
`<information>` block; they are dropped before minisearch parses the turns.
"""

from __future__ import annotations

import re

from minisearch.train.rewards import RewardConfig, read_output, reward_parts

_TEMPLATE_RESIDUE = re.compile(r"</?tool_response>|^(?:user|assistant|tool)$", re.M)


def task_of(ground_truth: dict) -> dict:
    """The minisearch task a row's ground truth stands for (what the reward functions read)."""
    task = {"golden_answers": [str(a) for a in ground_truth.get("golden_answers", [])]}
    masks = [str(m) for m in (ground_truth.get("masks") if ground_truth.get("masks") is not None else [])]
    if masks:
        task["metadata"] = {"masks": masks, "masked": str(ground_truth.get("masked", "")), "mask_num": len(masks)}
    return task


def reward_config(extra_info: dict | None) -> RewardConfig:
    settings = dict((extra_info or {}).get("reward") or {})
    cfg = RewardConfig(**{k: v for k, v in settings.items() if k in RewardConfig.__dataclass_fields__})
    if cfg.answer == "judge":
        cfg.answer = cfg.judge_fallback
    return cfg


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **_) -> dict:
    """{"score" in [0, 1], "format", "answer", "searches"} of one veRL response."""
    cfg = reward_config(extra_info)
    text = _TEMPLATE_RESIDUE.sub("", solution_str) if isinstance(solution_str, str) else solution_str
    parts = reward_parts(task_of(ground_truth), read_output(text), cfg)
    total = cfg.format_weight + cfg.answer_weight
    return {"score": parts["reward"] / total if total else 0.0, "format": parts["format"],
            "answer": parts["answer"], "searches": parts["searches"]}
