"""Batched multi-turn search rollouts: a small state machine over token ids.

For N tasks x G samples: generate every live trajectory until a stop tag, parse the turn,
run all pending searches as one batch (each task's own passage excluded), append the
<information> blocks, and continue; a trajectory ends at an answer, a malformed turn, a
search beyond `max_turns` (`protocol.turn_end`), or the token budget. The generator and the
search function are passed in: a model's sampler, a teacher (`train.teachers`: the teachers'
trajectories come from this same loop), or a test's script.

    trajs = rollout(tasks, backend.generate, searcher.search, backend.tokenizer, RolloutConfig(group=4))
    ids, mask = render(trajs[0])   # mask is 1 exactly on model-written tokens
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from minisearch.agent.backends import Completion, per_prompt
from minisearch.agent.protocol import STOP, information_turn, parse_turn, task_messages, turn_end
from minisearch.errors import UserError
from minisearch.settings import Settings, setting


@dataclass
class RolloutConfig(Settings):
    group: int = setting(1, help="G: samples per task.", min=1)
    max_turns: int = setting(4, help="Searches allowed per trajectory.", min=0)
    max_new_tokens: int = setting(128, help="Tokens per model turn.")
    max_total_tokens: int = setting(1024, help="Prompt and everything after it.")
    topk: int = setting(3, help="Passages per search.", min=1)
    words_per_hit: int = setting(80, help="Words shown of each passage.")
    temperature: float = setting(1.0, help="Sampling temperature (0: greedy).", min=0.0)
    top_p: float = setting(1.0, help="Nucleus sampling: the smallest set of tokens with this much probability.")


@dataclass
class Segment:
    who: str  # "prompt" | "model" | "tool"
    token_ids: list[int]
    text: str
    logprobs: list[float] | None = None  # the sampler's, for model segments


@dataclass
class Trajectory:
    task_id: str
    sample: int
    segments: list[Segment] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    answer: str | None = None
    end: str = ""  # "answer" | "malformed: <reason>" | "max_turns" | "length"

    @property
    def searches(self) -> int:
        return len(self.queries)

    @property
    def ids(self) -> list[int]:
        return [t for s in self.segments for t in s.token_ids]

    def completion_text(self) -> str:
        """Everything after the prompt: the model's turns and the tool's results."""
        return "".join(s.text for s in self.segments if s.who != "prompt")

    def to_dict(self) -> dict:
        return {**asdict(self), "searches": self.searches}


def render(traj: Trajectory) -> tuple[list[int], list[int]]:
    """Token ids and loss mask (1 on model-written tokens only): the one renderer for SFT and RL."""
    ids, mask = [], []
    for seg in traj.segments:
        ids += seg.token_ids
        mask += [1 if seg.who == "model" else 0] * len(seg.token_ids)
    return ids, mask


def to_record(traj: Trajectory, task: dict, max_turns: int, teacher: str, **extra) -> dict:
    """A trajectory as a JSON line (docs/formats.md): the texts, not the token ids, so any
    tokenizer can render it again with `from_record`."""
    turns = [{"who": s.who, "text": s.text} for s in traj.segments if s.who != "prompt"]
    return {"task_id": task["id"], "question": task["question"], "max_turns": max_turns, "turns": turns,
            "answer": traj.answer, "queries": list(traj.queries), "end": traj.end, "teacher": teacher, **extra}


def from_record(tokenizer, record: dict) -> Trajectory:
    """Tokenise a stored trajectory segment by segment, exactly as the rollout loop does."""
    task = {"id": record["task_id"], "question": record["question"]}
    ids, text = prompt_ids(tokenizer, task, record.get("max_turns", 4))
    traj = Trajectory(record["task_id"], 0, [Segment("prompt", ids, text)], list(record.get("queries", [])),
                      record.get("answer"), record.get("end", ""))
    for turn in record["turns"]:
        if turn["who"] not in ("model", "tool"):
            raise ValueError(f"a turn is written by 'model' or 'tool', not {turn['who']!r}")
        traj.segments.append(Segment(turn["who"], tokenizer(turn["text"], add_special_tokens=False)["input_ids"],
                                     turn["text"]))
    return traj


def prompt_ids(tokenizer, task: dict, max_turns: int) -> tuple[list[int], str]:
    """A task's prompt in the model's chat template, ending where the assistant begins.

    Thinking mode is asked for (`enable_thinking=True`, Qwen3's default; templates without
    the switch ignore it): the prompt ends at the assistant's header, and the protocol's own
    `<think>` is the model's thinking, rather than an empty think block the template writes.
    """
    text = tokenizer.apply_chat_template(task_messages(task, max_turns), tokenize=False, add_generation_prompt=True,
                                         enable_thinking=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"], text


Generate = Callable[..., list[list[Completion]]]
Search = Callable[..., list[list]]


def rollout(tasks: list[dict], generate: Generate, search: Search, tokenizer, cfg: RolloutConfig,
            on_segment: Callable[[Trajectory, Segment], None] | None = None,
            max_context: int | None = None) -> list[Trajectory]:
    """Run every task G times to the end; `on_segment(traj, segment)` sees each turn as it lands.

    Each live trajectory asks for what its context has left, at most `max_new_tokens`: a long
    context gets fewer new tokens, never more than `max_total_tokens` in all. `max_context`
    is the sampler's own limit (`backend.max_context`: a vLLM engine's real max_model_len,
    which Unsloth lowers when the KV cache cannot hold more); below `max_total_tokens` the
    rollout refuses at once rather than cut every long trajectory short of its budget."""
    if max_context is not None and max_context < cfg.max_total_tokens:
        raise UserError(f"the sampler's engine holds {max_context} tokens of context (its max_model_len as it "
                        f"started), fewer than rollout.max_total_tokens={cfg.max_total_tokens}: set max_total_tokens "
                        f"to {max_context} or less, or give the engine more memory for its KV cache (free GPU memory, "
                        "a larger gpu_memory_utilization)")

    def add(t: Trajectory, segment: Segment) -> None:
        t.segments.append(segment)
        if on_segment is not None:
            on_segment(t, segment)

    live: list[Trajectory] = []
    for task in tasks:
        ids, text = prompt_ids(tokenizer, task, cfg.max_turns)
        for g in range(cfg.group):
            live.append(Trajectory(task["id"], g, [Segment("prompt", list(ids), text)]))
    done: list[Trajectory] = []
    source = {t["id"]: t.get("metadata", {}).get("source_id") for t in tasks}
    while live:
        budgets = [cfg.max_total_tokens - len(t.ids) for t in live]
        for t, budget in zip(live, budgets):
            if budget <= 0:
                t.end = "length"
        live, finished = [t for t in live if not t.end], [t for t in live if t.end]
        done += finished
        if not live:
            break
        limits = [min(cfg.max_new_tokens, cfg.max_total_tokens - len(t.ids)) for t in live]  # each >= 1
        outs = generate([t.ids for t in live], n=1, max_new_tokens=limits, temperature=cfg.temperature,
                        top_p=cfg.top_p, stop=STOP)
        searching: list[Trajectory] = []
        for t, (c, *_) in zip(live, outs):
            room = cfg.max_total_tokens - len(t.ids)
            ids, logprobs = c.token_ids[:room], c.logprobs[:room]
            text = c.text if len(ids) == len(c.token_ids) else tokenizer.decode(ids, skip_special_tokens=False)
            add(t, Segment("model", ids, text, logprobs))
            turn = parse_turn(text)
            t.end = turn_end(turn, t.searches, cfg.max_turns)
            if turn.kind == "malformed" and len(ids) >= room:
                t.end = "length"  # the budget cut the turn, not the model
            if t.end == "answer":
                t.answer = turn.answer
            elif not t.end:
                t.queries.append(turn.query)
                searching.append(t)
        if searching:
            hits = search([t.queries[-1] for t in searching], k=cfg.topk,
                          exclude_ids=[[source[t.task_id]] if source[t.task_id] else [] for t in searching])
            for t, found in zip(searching, hits):
                block = information_turn(found, cfg.words_per_hit)
                ids = tokenizer(block, add_special_tokens=False)["input_ids"]
                room = cfg.max_total_tokens - len(t.ids)
                if len(ids) > room:  # the budget ends inside the results: keep what fits, then stop
                    ids, block = ids[:room], tokenizer.decode(ids[:room], skip_special_tokens=False)
                add(t, Segment("tool", ids, block))
        done += [t for t in live if t.end]
        live = [t for t in live if not t.end]
    order = {(task["id"]): i for i, task in enumerate(tasks)}
    return sorted(done, key=lambda t: (order[t.task_id], t.sample))


def completion(tokenizer, text: str, max_new_tokens: int, stop=STOP) -> Completion:
    """A written turn as a model's completion: cut after its first stop string, in the
    tokenizer's tokens, at most `max_new_tokens` of them (logprobs 0: nothing sampled it)."""
    cuts = [text.find(s) + len(s) for s in stop if s in text]
    text = text[:min(cuts)] if cuts else text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    new = ids[:max_new_tokens]
    finish = "stop" if cuts and len(new) == len(ids) else "length"
    return Completion(new, [0.0] * len(new), text if len(new) == len(ids) else tokenizer.decode(new), finish)


class ScriptedGenerator:
    """A generator that writes what `script(context_text)` says, as a model would.

    For tests: it speaks through the same tokenizer and stop strings as a model, so the
    trajectories it makes are rendered exactly like a model's.
    """

    def __init__(self, tokenizer, script: Callable[[str], str]):
        self.tokenizer = tokenizer
        self.script = script

    def __call__(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int | list[int] = 128, stop=STOP,
                 **_) -> list[list[Completion]]:
        contexts = [self.tokenizer.decode(ids, skip_special_tokens=False) for ids in prompts]
        return [[completion(self.tokenizer, self.script(c), limit, stop) for _ in range(n)]
                for c, limit in zip(contexts, per_prompt(max_new_tokens, prompts))]
