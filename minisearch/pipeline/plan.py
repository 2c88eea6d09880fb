"""`minisearch run RECIPE --plan --hardware NAME`: what each stage will do, and its cost, before anything runs.

For each stage the plan counts its work (passages, tasks, trajectories, tokens generated,
tokens trained, searches) from the recipe's settings and what the earlier stages will hand
it, then turns the work into seconds, peak RAM, VRAM and disk with the throughputs of a
hardware profile (`hardware.yaml`, each figure with its source). Counts that depend on
data not yet made (how many RAMP tasks a passage gives, how many trajectories a teacher gets
right) use the workload figures of the same file, measured on the demo where they can be.

    minisearch run recipes/qwen1.5b.yaml --plan --hardware rtx4090

The plan is an estimate: `bench/plan_check.py RUN` prints it beside a finished run's real
stage times. Every run starts with `pipeline.preflight`, which refuses a machine short of the plan.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import yaml

from minisearch.errors import UserError
from minisearch.pipeline.plantable import table
from minisearch.pipeline.sizes import count_file, model_params
from minisearch.pretrained import SOURCES

HARDWARE = Path(__file__).with_name("hardware.yaml")
GB = 1e9
RAMP_KEYS = ("ramp_tasks_per_try", "ramp_searches_per_passage", "ramp_searches_needed")  # by recover mode


def profiles() -> dict:
    return yaml.safe_load(HARDWARE.read_text())


@dataclasses.dataclass
class Cost:
    """One stage's work in numbers and its cost on one profile."""

    stage: str
    kind: str
    work: dict
    seconds: float = 0.0
    ram_gb: float = 2.0
    vram_gb: float = 0.0
    disk_gb: float = 0.0
    note: str = ""
    gpu: bool = False  # the stage runs on the gpu backend


class Planner:
    """Walks a recipe's stages in order; `flow` carries what each stage hands the next."""

    def __init__(self, hardware: str, stages):
        data = profiles()
        if hardware not in data["profiles"]:
            raise UserError(f"--hardware {hardware}: no such profile; profiles: {', '.join(data['profiles'])} "
                            f"(add one to {HARDWARE})")
        self.name, self.hw, self.load = hardware, data["profiles"][hardware], data["workload"]
        self.tpw = data["models"]["tokens_per_word"]
        self.stages = stages
        self.flow: dict[str, dict] = {}  # stage folder -> {"passages", "tasks", "dev", "trajectories", "words"}
        self.tiny = {s.cfg.out for s in stages if s.kind in ("init", "warmup")}
        self.params: dict[str, float] = {}  # model folders a pretrained stage will write -> parameters

    # ---- what an input path holds ------------------------------------------------------
    def source(self, path) -> dict:
        """The counts of an input: an earlier stage's folder (or a file in it), else a file read."""
        if path is None:
            return {}
        path = str(path)
        for out, counts in sorted(self.flow.items(), key=lambda kv: -len(kv[0])):  # the deepest first
            if path == out or path.startswith(out + "/"):
                rest = path[len(out) + 1:]
                if rest.endswith("dev.jsonl") and "dev" in counts:
                    return {**counts, "tasks": counts["dev"]}
                return counts
        if path.startswith("hf:"):
            name = path[3:]
            return {"passages": self.load["corpus_passages"].get(name, 1_000_000),
                    "words": self.load["words_per_passage"].get(name, 100)}
        if path.startswith("toyworld"):
            size = int(path.split(":")[1]) if ":" in path else 2000
            return {"passages": 2 * size, "words": self.load["words_per_passage"]["toyworld"],  # leads + records
                    **self.toy_ramp(records=True)}
        return count_file(Path(path))

    def toy_ramp(self, records: bool) -> dict:
        """RAMP's yield and searches on a toy world (with records passages a lead's facts can be found
        again), by recover mode, under the flow keys RAMP_KEYS."""
        toy = self.load["toyworld_ramp"] if records else {}
        return {key: {**self.load[key], **toy.get(key, {})} for key in RAMP_KEYS}

    def model(self, name) -> dict:
        """The rates of the model `name` on this profile, and its size."""
        if str(name) in self.tiny:
            return {"tiny": True, "params": 1.3e6, **self.hw.get("tiny", self.hw["llm"]),
                    "tpw": self.tpw["tiny"]}
        params = self.params.get(str(name)) or model_params(str(name))
        ref = self.hw["llm"]
        ratio = ref["params"] / params
        return {"tiny": False, "params": params, "load_s": ref["load_s"] * max(1.0, 1 / ratio) ** 0.5,
                "train_tokens_s": ref["train_tokens_s"] * ratio ** self.hw.get("train_scale", 1.0),
                "prefill_tokens_s": ref["prefill_tokens_s"] * ratio,
                "generate_tokens_s": ref["generate_tokens_s"] * ratio ** self.hw.get("generate_scale", 1.0),
                "tpw": self.tpw["llm"]}

    def search_ram(self, index) -> float:
        """GB a process holds while it searches a bm25s index (vocabulary, offsets, and the pages of
        the memory-mapped matrix its queries read, which the kernel may drop)."""
        info = self.source(index)
        if info.get("backend") != "bm25s":
            return 0.0
        ram = self.hw["bm25s_search_ram"]
        return ram["base_gb"] + ram["per_million_gb"] * info.get("passages", 0) / 1e6

    def search_s(self, index, queries: float) -> float:
        if index is None or queries == 0:
            return 0.0
        info = self.source(index)
        rate = self.hw["search"][info.get("backend", "whoosh")]
        return queries * (rate["base_ms"] + rate["per_million_ms"] * info.get("passages", 0) / 1e6) / 1000

    # ---- token arithmetic ----------------------------------------------------------------
    def trajectory(self, m: dict, question_words: float, searches: float, topk: int, words_per_hit: int,
                   passage_words: float, answer_words: float) -> tuple[float, float]:
        """(tokens in a trajectory, tokens the model writes in it)."""
        from minisearch.agent.protocol import system_prompt

        hit = min(words_per_hit, passage_words) + 6  # "Doc i (Title: ...)"
        written = (searches + 1) * self.load["model_tokens_per_turn"]["tiny" if m["tiny"] else "llm"] \
            + answer_words * m["tpw"]
        total = (len(system_prompt(4).split()) + question_words + searches * topk * hit) * m["tpw"] \
            + searches * 20 + written
        return total, written

    def agent(self, m: dict, src: dict, r) -> tuple[float, float, float]:
        """(searches, tokens, tokens the model writes) of one trajectory of the agent itself on
        the tasks `src`, under rollout settings `r` (a search per mask, half of them shared)."""
        ramp = src.get("ramp", False)
        searches = src.get("searches", 1.0) if ramp else self.load["searches_per_task"]["scripted_qa"]
        qwords = src.get("words", 100) if ramp else self.load["qa_question_words"]
        total, written = self.trajectory(m, qwords, searches, r.topk, r.words_per_hit, src.get("words", 100), 3)
        return searches, min(total, r.max_total_tokens), written

    # ---- the stages --------------------------------------------------------------------------
    def plan(self) -> list[Cost]:
        costs = []
        for stage in self.stages:
            gpu = getattr(stage.cfg, "model_backend", "cpu") == "gpu"
            cost = getattr(self, f"_{stage.kind}")(stage.cfg, Cost(stage.name, stage.kind, {}, gpu=gpu))
            cost.seconds = round(cost.seconds, 1)
            if stage.kind != "index" and getattr(stage.cfg, "index", None):
                cost.ram_gb = max(cost.ram_gb, 2.0 + self.search_ram(stage.cfg.index))
            costs.append(cost)
        return costs

    def _items(self, kind: str, n: float) -> float:
        return n / self.hw["items_s"][kind]

    def _toyworld(self, cfg, cost):
        qa = cfg.size * self.load["qa_per_entity"]
        words = self.load["words_per_passage"]["toyworld" if cfg.records else "toyworld_leads"]
        passages = cfg.size * (2 if cfg.records else 1)  # a lead and a records passage each
        self.flow[cfg.out] = {"passages": passages, "words": words, **self.toy_ramp(cfg.records)}
        self.flow[f"{cfg.out}/qa/train.jsonl"] = {"tasks": qa * self.load["qa_train_share"], "qa": True}
        self.flow[f"{cfg.out}/qa/dev.jsonl"] = {"tasks": qa * (1 - self.load["qa_train_share"]) / 2, "qa": True}
        cost.work = {"passages": passages, "tasks": round(qa)}
        cost.seconds = self._items("toyworld", cfg.size)
        cost.disk_gb = cfg.size * 2000 / GB
        return cost

    def _corpus(self, cfg, cost):
        src = self.source(cfg.source)
        self.flow[cfg.out] = {k: v for k, v in src.items() if k in ("passages", "words", *RAMP_KEYS)}
        cost.work = {"passages": src.get("passages", 0)}
        cost.seconds = self._items("corpus", src.get("passages", 0))
        cost.disk_gb = src.get("passages", 0) * (src.get("words", 100) * 6.5 + 40) / GB
        return cost

    def _index(self, cfg, cost):
        src = self.source(cfg.source)
        n = src.get("passages", 0)
        self.flow[cfg.out] = {**src, "backend": cfg.search_backend}
        cost.work = {"passages": n}
        cost.seconds = n / self.hw["index_passages_s"][cfg.search_backend]
        if cfg.search_backend == "bm25s":
            ram = self.hw["bm25s_ram"]
            cost.ram_gb = ram["base_gb"] + ram["per_million_gb"] * n / 1e6
            cost.disk_gb = n * (src.get("words", 100) * 6.5 + 40 + 56 * 8 + 8) / GB + n * 56 * 12 / GB  # + runs
        else:
            cost.ram_gb, cost.disk_gb = 1.0, n * src.get("words", 100) * 12 / GB
        return cost

    def _pretrained(self, cfg, cost):
        params = self.params[cfg.out] = SOURCES[cfg.name]["parameters"]
        cost.work = {"parameters": params}
        cost.seconds = params / self.hw["convert_params_s"]
        cost.disk_gb = params * 4 / GB  # float32
        return cost

    def _init(self, cfg, cost):
        src = self.source(cfg.corpus)
        cost.work = {"passages": src.get("passages", 0)}
        cost.seconds = 8.0
        return cost

    def _warmup(self, cfg, cost):
        tokens = cfg.steps * cfg.batch_size * cfg.seq_len
        m = self.model(cfg.out)
        cost.work = {"tokens_trained": tokens, "steps": cfg.steps}
        cost.seconds = tokens / m["warmup_tokens_s"]
        return cost

    def _ramp(self, cfg, cost):
        src = self.source(cfg.corpus)
        n = min(cfg.passages or src.get("passages", 0), src.get("passages", 0))
        tries = n * cfg.per_passage
        mode = "none" if not cfg.index else cfg.recover
        per_try, per_passage, needed = (src.get(key, self.load[key])[mode] if mode in self.load[key] else 0.0
                                        for key in RAMP_KEYS)
        tasks, searches = tries * per_try, n * per_passage
        self.flow[cfg.out] = {"tasks": tasks * (1 - cfg.dev_fraction), "dev": tasks * cfg.dev_fraction,
                              "words": src.get("words", 100), "ramp": True, "searches": needed,
                              "k": sum((i + 1) * w for i, w in enumerate(cfg.k_weights)) / sum(cfg.k_weights)}
        cost.work = {"passages": n, "tasks": round(tasks), "searches": searches}
        cost.seconds = (src.get("passages", 0) / self.hw["items_s"]["corpus"] + self._items("ramp", n)
                        + self.search_s(cfg.index, searches))
        if cfg.passages is None and src.get("passages", 0) > 1_000_000:
            cost.note = "every passage is masked: set ramp.passages"
        return cost

    def _answer_words(self, src: dict, form: str) -> float:
        return src.get("words", 100) if src.get("ramp") and form == "paragraph" else 3 * src.get("k", 1)

    def _traj(self, cfg, cost):
        src = self.source(cfg.tasks)
        tasks = min(cfg.limit or src.get("tasks", 0), src.get("tasks", 0))
        m = self.model(cfg.model)
        ramp = src.get("ramp", False)
        agents = cfg.teacher == "agents"
        searches = (self.load["searches_per_task"]["agent"] if agents else src.get("searches", 1.0) if ramp
                    else self.load["searches_per_task"]["scripted_qa"])
        qwords = src.get("words", 100) if ramp else self.load["qa_question_words"]
        total, written = self.trajectory(m, qwords, searches, cfg.teach.topk, cfg.teach.words_per_hit,
                                         src.get("words", 100), self._answer_words(src, cfg.teach.answer_form))
        accepted = tasks * self.load["teacher_acceptance"][cfg.teacher]
        seconds = self.search_s(cfg.index, tasks * searches) + self._items("render", tasks)
        gen = 0.0
        if agents:
            t = self.model(cfg.teacher_model)
            per = self.load["teacher_tokens_per_task"]
            gen = tasks * per["generate"]
            seconds += t["load_s"] + tasks * (per["prefill"] / t["prefill_tokens_s"]
                                              + per["generate"] / t["generate_tokens_s"])
            cost.vram_gb = self.vram(t["params"], kv_tokens=cfg.batch * 4096, train=False)
        students = cfg.rounds - 1
        if students:  # each round: SFT steps on the pool, then the student alone on fresh tasks
            fresh = students * cfg.round_tasks
            seconds += m["load_s"] + students * cfg.student_steps * 8 * total / m["train_tokens_s"]
            seconds += fresh * (searches * total / m["prefill_tokens_s"] + written / m["generate_tokens_s"])
            seconds += self.search_s(cfg.index, fresh * searches)
            accepted += fresh * self.load["teacher_acceptance"]["scripted"] * 0.5
            gen += fresh * written
            cost.vram_gb = max(cost.vram_gb, self.vram(m["params"], kv_tokens=64 * 2048))
        self.flow[cfg.out] = {"trajectories": accepted, "tokens": total}
        cost.work = {"tasks": tasks, "trajectories": round(accepted), "tokens_generated": round(gen),
                     "searches": round(tasks * searches)}
        cost.seconds = seconds
        return cost

    def _sft(self, cfg, cost):
        data = cfg.data if isinstance(cfg.data, list) else [cfg.data]
        srcs = [self.source(d) for d in data]
        trajs = sum(s.get("trajectories", s.get("tasks", 0)) for s in srcs)
        tokens_each = max([s.get("tokens", 400) for s in srcs])
        m = self.model(cfg.model)
        examples = trajs * cfg.epochs
        steps = math.ceil(examples / (cfg.batch_size * cfg.grad_accum))
        if cfg.max_steps > 0:
            steps = cfg.max_steps
            examples = steps * cfg.batch_size * cfg.grad_accum
        tokens = examples * min(tokens_each, cfg.max_len)
        cost.work = {"trajectories": round(trajs), "steps": steps, "tokens_trained": round(tokens)}
        cost.seconds = m["load_s"] + tokens / m["train_tokens_s"] + self._eval_seconds(cfg, m, cfg.eval_limit, 2)
        cost.vram_gb = self.vram(m["params"], micro_tokens=cfg.micro_tokens) if not m["tiny"] else 0
        return cost

    def _dapo(self, cfg, cost):
        src = self.source(cfg.tasks)
        m = self.model(cfg.model)
        r = cfg.rollout
        searches, total, written = self.agent(m, src, r)
        rollouts = cfg.steps * cfg.batch_tasks * cfg.group * self.load["dapo_generation_factor"]
        kept = cfg.steps * cfg.batch_tasks * cfg.group
        prefill = rollouts * total * self._rereads(searches)
        trained = kept * total * cfg.updates
        cost.work = {"steps": cfg.steps, "rollouts": round(rollouts), "tokens_generated": round(rollouts * written),
                     "tokens_trained": round(trained), "searches": round(rollouts * searches)}
        cost.seconds = (m["load_s"] + prefill / m["prefill_tokens_s"] + rollouts * written / m["generate_tokens_s"]
                        + trained / m["train_tokens_s"] + kept * total / m["prefill_tokens_s"]  # old log-probs
                        + self.search_s(cfg.index, rollouts * searches)
                        + self._eval_seconds(cfg, m, cfg.eval_limit, 2)
                        # validation checks: at the start, every val_every steps and at the last
                        + self._rollouts(m, (1 + math.ceil(cfg.steps / cfg.val_every)) * cfg.val_tasks, src,
                                         cfg.rollout, cfg.index)[0])
        cost.vram_gb = self.vram(m["params"], micro_tokens=cfg.micro_tokens,
                                 kv_tokens=cfg.batch_tasks * cfg.group * r.max_total_tokens) if not m["tiny"] else 0
        return cost

    def _eval_seconds(self, cfg, m: dict, limit: int, runs: int) -> float:
        """An in-training evaluation (sft/dapo `eval_tasks`): `runs` passes over `limit` tasks."""
        if not getattr(cfg, "eval_tasks", None):
            return 0.0
        tasks = min(limit, self.source(cfg.eval_tasks).get("tasks", limit))
        return runs * self._rollouts(m, tasks, self.source(cfg.eval_tasks), cfg.rollout, cfg.index)[0]

    def _rollouts(self, m: dict, n: float, src: dict, r, index, capped: int | None = None,
                  one_turn: bool = False) -> tuple[float, float]:
        """(seconds, tokens generated) of `n` greedy rollouts; `capped`: each turn that many
        tokens; `one_turn`: no search (a model that never closes a tag, or RAG-PE)."""
        searches, total, written = self.agent(m, src, r)
        if one_turn:
            searches = 0
        if capped:  # the first turn decodes to the cap; the few samples left after it, as they write
            written = capped + searches * self.load["model_tokens_per_turn"]["tiny" if m["tiny"] else "llm"]
        seconds = n * (total * self._rereads(searches) / m["prefill_tokens_s"] + written / m["generate_tokens_s"])
        return seconds + self.search_s(index, n * searches), n * written

    def _rereads(self, searches: float) -> float:
        """How many times a rollout's context is prefilled: once where the sampler keeps each
        trajectory's keys and values across turns (`kv_reuse`), else at every turn (~60% of it
        on average)."""
        return 1.0 if self.hw.get("kv_reuse", False) else (searches + 1) * 0.6

    def _qaset(self, cfg, cost):
        tasks = cfg.limit or 10_000
        self.flow[cfg.out] = {"tasks": tasks, "qa": True}
        cost.work = {"tasks": tasks}
        cost.seconds = self._items("qaset", tasks)
        return cost

    def _eval(self, cfg, cost):
        m = self.model(cfg.model)
        seconds = gen = tasks = 0.0
        padded = self.hw.get("padded_generate", False)
        for spec in cfg.sets.values():
            src = self.source(spec) if "/" in str(spec) else {"tasks": cfg.limit, "qa": True}
            n = min(cfg.limit, src.get("tasks", cfg.limit))
            runs = [(adapter is None and m["tiny"]) for adapter in cfg.models.values()] + [True] * len(cfg.baselines)
            for untrained in runs:  # each model, then the baselines (RAG-PE: one answer by the base model)
                # HF generate pads a batch to its longest member, and a greedy small model often has one
                # that never closes a tag (a fifth of the demo's trained samples): the first turn runs to
                # the cap; an untrained tiny model stops there
                capped = cfg.rollout.max_new_tokens if padded or untrained else None
                s, g = self._rollouts(m, n, src, cfg.rollout, cfg.index, capped, one_turn=untrained)
                seconds, gen, tasks = seconds + s, gen + g, tasks + n
        cost.work = {"tasks": round(tasks), "tokens_generated": round(gen)}
        cost.seconds = m["load_s"] * len(cfg.models) + seconds
        cost.vram_gb = self.vram(m["params"], kv_tokens=64 * cfg.rollout.max_total_tokens) if not m["tiny"] else 0
        return cost

    def vram(self, params: float, micro_tokens: int = 0, kv_tokens: int = 0, train: bool = True) -> float:
        """GB of GPU memory: 4-bit weights (0.73 B a parameter, docs/memory.md), LoRA with AdamW
        (0.18 B), activations of one micro-batch (3.6 GiB at 8,192 tokens of the 1.5B model,
        docs/memory.md) and vLLM's KV cache (28 KB a token at 1.5B: 28 layers x 2 KV heads x 128 x
        2 x bf16)."""
        if self.hw["vram_gb"] == 0:
            return 0.0
        size = params / 1.54e9
        gb = 0.73 * params / GB + (0.18 * params / GB if train else 0)
        gb += 3.9 * micro_tokens / 8192 * size ** 0.5 if train else 0
        return gb + kv_tokens * 28_672 * size ** 0.5 / GB


def plan_recipe(path: str, sets: list[str], hardware: str) -> tuple[list[Cost], str]:
    """The costs and the printed table of a recipe on a profile (nothing runs)."""
    from minisearch.pipeline.recipe import read_recipe
    from minisearch.pipeline.stages import plan

    _, stages = plan(read_recipe(path, sets))
    costs = Planner(hardware, stages).plan()
    return costs, table(costs, hardware, profiles()["profiles"][hardware])
