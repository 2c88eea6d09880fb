"""The ramp stage: passages -> RAMP tasks (masked paragraphs to fill by searching).

    minisearch ramp runs/demo/corpus --out runs/demo/ramp --k-weights 0.4,0.3,0.2,0.1

For each passage: find its salient spans (`minisearch.ramp.spanfinder`), draw k in 1..4 from
`k_weights`, mask k distinct spans (longer spans and numbers more likely), and write a QA
task whose question is the instruction plus the masked paragraph and whose gold answer is
the original paragraph; `metadata` keeps the spans in order, the real `mask_num`, and the
`source_id`, which searches for this task must exclude. The page title is never masked and
is prepended when the paragraph does not name it; a task never starts with a mask.
Passages with too few words or spans are skipped and counted. Train/dev split by passage.
With `passages`, only a seeded sample of that many is masked (one pass over the corpus, the
sample held): wiki-18's 21M passages would give ~150M span searches.
With `hard_model` (perplexity masking, the paper's harder variant) the k spans masked are
those that model predicts worst from the text before them. With `index`, a span is a
candidate only if a search brings it back from another passage (the task's own passage is
excluded from its searches, so a fact written nowhere else cannot be recovered): with
`recover: span` the span searched for itself finds it in the top 10 (an upper bound on what
an agent's queries can reach); with `recover: title` searching the page's title, the query
an agent can always write, finds it in the top `recover_k` (a passage without a title is
skipped); with `recover: plan` the title or a name the paragraph mentions does, and the masks
are chosen with a search plan (`minisearch.ramp.plan`): the fewest searches that fill them,
each query one the agent can see (in the task or in an earlier search's results). With
`title` and `plan`, `metadata.plan` lists the searches ({query, masks it fills}) and
`metadata.searches_needed` their number; at k >= 2 the masks are drawn to need two or more
searches where the passage allows, and one-search tasks are thinned until at least
`multi_share` of each split's k >= 2 tasks need several, so that the curriculum by k raises
the searches, not only the spans copied out of one result. `stats.json` counts the tasks by
k and searches needed.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

from minisearch.agent.protocol import ramp_question
from minisearch.data.corpus import iter_passages
from minisearch.errors import UserError
from minisearch.jsonl import write_jsonl
from minisearch.ramp.plan import plan_queries, reach_of, reachable, search_plan
from minisearch.ramp.spanfinder import find_spans
from minisearch.records import MASK, make_qa, split_contents
from minisearch.rundir import stage_folder
from minisearch.settings import SettingError, Settings, setting

RECOVER = ("span", "title", "plan")
PLAN_TRIES = 12  # mask draws per task looking for one that needs several searches

NUMBER = re.compile(r"\d")
BATCH = 256  # passages whose recoverability searches go as one batch


@dataclass
class RampConfig(Settings):
    corpus: str = setting(help="Passages to mask (a corpus stage folder or any corpus source).", path=True, arg=True)
    out: str = setting(help="Stage folder to write.")
    k_weights: list[float] = setting([0.4, 0.3, 0.2, 0.1], help="Weights of k = 1, 2, 3, 4 masks per task.")
    dev_fraction: float = setting(0.05, help="Share of passages held out as dev tasks.", min=0.0)
    min_words: int = setting(25, help="Shorter passages are skipped.", min=1)
    seed: int = setting(0, help="Same seed, same tasks.")
    hard_model: str | None = setting(None, help="Perplexity masking: mask the spans this model guesses worst.",
                                     path=True)
    index: str | None = setting(None, help="Keep only spans a search of this index brings back from another "
                                           "passage.", path=True)
    per_passage: int = setting(1, help="Tasks made from each passage (other masks each time; duplicates dropped).",
                               min=1)
    recover: str = setting("span", choices=RECOVER,
                           help="With an index: span (the span searched for finds itself), title (a search "
                                "of the page title finds it) or plan (the title or a name in the paragraph "
                                "does; tasks carry their search plan).")
    recover_k: int = setting(3, help="With recover: title or plan, the hits searched (the agent's top-k).", min=1)
    multi_share: float = setting(0.5, help="With recover: plan, the least share of tasks with k >= 2 masks that need "
                                           "two or more searches (one-search tasks are dropped to reach it).", min=0.0)
    passages: int | None = setting(None, help="Mask only this many passages, a seeded sample of the corpus "
                                              "(wiki-18 has 21M) [default: all].", min=1)

    def validate(self):
        if len(self.k_weights) != 4 or min(self.k_weights) < 0 or sum(self.k_weights) <= 0:
            raise SettingError(f"k_weights must be four non-negative weights for k = 1..4, got {self.k_weights}")
        if self.multi_share > 1:
            raise SettingError(f"multi_share={self.multi_share}: it is a share, at most 1")


def recoverable(searcher, spans: list[str], source_id: str, k: int = 10, title: str | None = None) -> list[str]:
    """The spans that a search can bring back from another passage than the task's own.

    Each span is searched for itself (an upper bound on what an agent's queries can reach),
    or, given the page's `title`, one search for the title is made; a span is kept when it
    stands verbatim in one of the top k hits, the source excluded.
    """
    queries = [title] if title else spans
    hits = searcher.search(queries, k=k, exclude_ids=[[source_id]] * len(queries))
    if title:
        return [span for span in spans if any(span in h.contents for h in hits[0])]
    return [span for span, found in zip(spans, hits) if any(span in h.contents for h in found)]


def span_losses(backend, text: str, spans: list[str]) -> list[float]:
    """Mean negative log-likelihood of each span's tokens given the text before it (no search).

    The span takes its leading space with it, so it is tokenised as it would be in place.
    """
    tok = backend.tokenizer
    seqs, where = [], []
    for span in spans:
        at = text.index(span)
        if at > 0 and text[at - 1] == " ":
            at -= 1
        prefix = tok(text[:at], add_special_tokens=False)["input_ids"]
        body = tok(text[at:at + len(span) + (1 if text[at] == " " else 0)], add_special_tokens=False)["input_ids"]
        if not prefix:  # nothing to condition the first token on
            prefix, body = body[:1], body[1:]
        seqs.append(prefix + body)
        where.append((len(prefix), len(body)))
    logprobs = backend.token_logprobs(seqs)
    return [-float(lp[p - 1:p - 1 + n].mean()) if n else 0.0 for lp, (p, n) in zip(logprobs, where)]


def hardest(backend):
    """A span chooser for perplexity masking: the k spans the model guesses worst (scored
    once per passage, however many tasks it gives)."""
    last: dict[tuple, list[float]] = {}

    def choose(text: str, spans: list[str], k: int, rng: random.Random) -> list[str]:
        key = (text, tuple(spans))
        if key not in last:
            last.clear()
            last[key] = span_losses(backend, text, spans)
        return [s for _, s in sorted(zip(last[key], spans), key=lambda x: -x[0])[:k]]
    return choose


def weighted(text: str, spans: list[str], k: int, rng: random.Random) -> list[str]:
    """The default chooser: k distinct spans, longer ones and numbers more likely."""
    chosen, pool = [], list(spans)
    while pool and len(chosen) < k:
        pick = rng.choices(pool, weights=[span_weight(s) for s in pool])[0]
        pool.remove(pick)
        chosen.append(pick)
    return chosen


def span_weight(span: str) -> float:
    """Longer spans and numbers are favoured, as in the paper."""
    return len(span.split()) + (1.0 if NUMBER.search(span) else 0.0)


def candidates(passage: dict, min_words: int = 25) -> tuple[str, str, list[str], str]:
    """(title, text as masked, salient spans, "") or ("", "", [], why the passage is skipped)."""
    title, text = split_contents(passage["contents"])
    if len(text.split()) < min_words:
        return "", "", [], "too_short"
    if title and title not in text:
        text = f"{title}: {text}"
    return title, text, find_spans(text, title), ""


def prefetch(searcher, passages: list[dict], min_words: int, recover: str, recover_k: int) -> None:
    """Run the recoverability searches of many passages as one batch (the searcher's cache
    then answers `make_tasks`); a batch is many times faster than one query at a time."""
    queries, excluded = [], []
    for passage in passages:
        title, text, spans, why = candidates(passage, min_words)
        if why or not spans or (recover == "title" and not title):
            continue
        mine = spans if recover == "span" else plan_queries(title, text, names=recover == "plan")
        queries += mine
        excluded += [[passage["id"]]] * len(mine)
    if queries:
        searcher.search(queries, k=10 if recover == "span" else recover_k, exclude_ids=excluded)


def make_tasks(passage: dict, ks: list[int], rng: random.Random, min_words: int = 25,
               choose=weighted, searcher=None, recover: str = "span", recover_k: int = 3,
               ) -> tuple[list[dict], Counter]:
    """One task per mask count in `ks` (other spans each time, duplicates dropped), and why
    the others were skipped; `choose` picks the spans to mask; with a `searcher`, only spans
    recoverable from other passages are candidates (searched once per passage; `recover` and
    `recover_k` as in RampConfig)."""
    title, text, spans, why = candidates(passage, min_words)
    if why:
        return [], Counter({why: 1})
    reach = None
    if spans and searcher is not None:
        if recover != "span" and not title:  # nothing an agent could search for
            return [], Counter(no_title=1)
        if recover == "span":
            spans = recoverable(searcher, spans, passage["id"])
        else:
            reach = reach_of(searcher, passage["id"], plan_queries(title, text, names=recover == "plan"), recover_k)
            spans = reachable(spans, reach)
    if not spans:
        return [], Counter(no_spans=1)
    tasks, skipped = [], Counter()
    for n, k in enumerate(ks):
        chosen, masked, plan, why = _draw(text, title, spans, k, rng, choose, reach, recover == "plan" and k >= 2)
        if why or any(t["metadata"]["masked"] == masked for t in tasks):
            skipped[why or "duplicate"] += 1
            continue
        task_id = f"ramp-{passage['id']}" + (f"-{n}" if n else "")
        extra = {"plan": plan, "searches_needed": len(plan)} if plan is not None else {}
        tasks.append(make_qa(task_id, ramp_question(masked, title), [text], masks=chosen, mask_num=len(chosen),
                             source_id=passage["id"], title=title, masked=masked, **extra))
    return tasks, skipped


def _draw(text: str, title: str, spans: list[str], k: int, rng: random.Random, choose, reach, want_multi: bool):
    """(masks in text order, masked text, plan or None, "") or ([], "", None, why): the masks
    of one task; with `reach`, a draw whose plan fills every mask, retried (PLAN_TRIES) for
    one that needs two or more searches when `want_multi`."""
    best = None
    for _ in range(PLAN_TRIES if reach is not None else 1):
        chosen = sorted(choose(text, spans, k, rng), key=text.index)
        masked, why = mask_spans(text, chosen)
        if why:
            continue
        plan = search_plan(chosen, title, masked, reach) if reach is not None else None
        if reach is not None and plan is None:
            why = "no_plan"
            continue
        if best is None or (want_multi and len(plan) > len(best[2])):
            best = (chosen, masked, plan)
        if not want_multi or len(plan) >= 2:
            break
    return (*best, "") if best else ([], "", None, why)


def make_task(passage: dict, k: int, rng: random.Random, min_words: int = 25,
              choose=weighted, searcher=None) -> tuple[dict | None, str]:
    """(task, "") or (None, why it was skipped): `make_tasks` for one mask count."""
    tasks, skipped = make_tasks(passage, [k], rng, min_words, choose, searcher)
    return (tasks[0], "") if tasks else (None, next(iter(skipped)))


def mask_spans(text: str, chosen: list[str]) -> tuple[str, str]:
    """(the text with each chosen span replaced by [mask], "") or ("", why it cannot be)."""
    masked = text
    for span in reversed(chosen):
        at = masked.find(span)
        if at < 0:  # one chosen span inside another
            return "", "overlapping_spans"
        masked = masked[:at] + MASK + masked[at + len(span):]
    return ("", "starts_with_mask") if masked.startswith(MASK) else (masked, "")


def thin_single(tasks: list[dict], share: float, rng: random.Random) -> tuple[list[dict], int]:
    """The tasks with k >= 2 one-search tasks dropped at random, as few as it takes for at least
    `share` of the k >= 2 tasks to need several searches; (kept in order, dropped count)."""
    def single(t):
        return t["metadata"]["mask_num"] >= 2 and t["metadata"]["searches_needed"] == 1
    singles = [i for i, t in enumerate(tasks) if single(t)]
    multi = sum(t["metadata"]["mask_num"] >= 2 for t in tasks) - len(singles)
    allowed = len(singles) if share <= 0 else min(len(singles), int(multi * (1 - share) / share)) if share < 1 else 0
    drop = set(rng.sample(singles, len(singles) - allowed))
    return [t for i, t in enumerate(tasks) if i not in drop], len(drop)


def depth_table(tasks: list[dict]) -> dict:
    """Tasks by mask count and searches needed: {"k=2": {"1": n, "2": m}, ...} (tasks without a plan: "-")."""
    table: dict[str, Counter] = {}
    for t in tasks:
        meta = t["metadata"]
        table.setdefault(f"k={meta['mask_num']}", Counter())[str(meta.get("searches_needed", "-"))] += 1
    return {k: dict(sorted(c.items())) for k, c in sorted(table.items())}


def corpus_size(corpus: str) -> int | None:
    """The passages of a corpus stage folder (its done.json), for the progress bar; None if unknown."""
    from minisearch.rundir import read_done

    done = read_done(corpus) if Path(corpus).is_dir() else None
    return done["counts"].get("passages") if done else None


def batched(items: Iterable, n: int):
    """Lists of `n` items in order, the last shorter (itertools.batched arrives in Python 3.12)."""
    items = iter(items)
    while batch := list(islice(items, n)):
        yield batch


def sample(passages: Iterable[dict], n: int, seed: int) -> list[dict]:
    """A uniform sample of `n` passages from a stream of any length, in corpus order
    (reservoir sampling: one pass, `n` passages held)."""
    rng = random.Random(f"ramp-sample-{seed}")
    kept: list[tuple[int, dict]] = []
    for i, passage in enumerate(passages):
        if i < n:
            kept.append((i, passage))
        elif (j := rng.randrange(i + 1)) < n:
            kept[j] = (i, passage)
    return [p for _, p in sorted(kept, key=lambda x: x[0])]


def run(cfg: RampConfig, echo=print) -> Path:
    tasks, skipped = {"train": [], "dev": []}, Counter()
    with ExitStack() as owned:  # the scorer and the searcher are closed however the loop ends
        choose, searcher = weighted, None
        if cfg.hard_model:
            from minisearch.agent.backends.cpu import CpuBackend

            choose = hardest(owned.enter_context(CpuBackend(cfg.hard_model)))
        if cfg.index:
            from minisearch.search import open_searcher

            searcher = owned.enter_context(open_searcher(cfg.index))
        make_all(cfg, choose, searcher, tasks, skipped)
    if cfg.recover == "plan":
        for split, rows in tasks.items():
            tasks[split], thinned = thin_single(rows, cfg.multi_share, random.Random(f"thin-{cfg.seed}-{split}"))
            skipped["one_search"] += thinned
    if not tasks["train"]:
        raise UserError(f"{cfg.corpus}: no RAMP tasks could be made (skipped: {dict(skipped)})")
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        for split, rows in tasks.items():
            write_jsonl(tmp / f"{split}.jsonl", rows)
        by_k = Counter(t["metadata"]["mask_num"] for rows in tasks.values() for t in rows)
        counts.update(train=len(tasks["train"]), dev=len(tasks["dev"]), skipped=dict(skipped),
                      mask_num={str(k): by_k[k] for k in sorted(by_k)},
                      **({"searches_needed": depth_table(tasks["train"] + tasks["dev"])} if cfg.index else {}))
        (tmp / "stats.json").write_text(json.dumps(counts, indent=2) + "\n")
    echo(f"ramp: {len(tasks['train'])} train, {len(tasks['dev'])} dev tasks; masks {dict(sorted(by_k.items()))}; "
          f"skipped {dict(skipped)}" + (f"; searches needed by k {counts['searches_needed']}" if cfg.index else ""))
    return Path(cfg.out)


def make_all(cfg: RampConfig, choose, searcher, tasks: dict, skipped: Counter) -> None:
    """Every sampled passage's tasks, into `tasks` by split; why passages gave none, into `skipped`."""
    from tqdm import tqdm

    rng = random.Random(cfg.seed)
    source = iter_passages(cfg.corpus)
    if cfg.passages:
        source = sample(tqdm(source, desc="ramp (sample)", unit=" passages", total=corpus_size(cfg.corpus),
                             mininterval=2.0), cfg.passages, cfg.seed)
    with tqdm(desc="ramp", unit=" passages", total=cfg.passages or corpus_size(cfg.corpus), mininterval=2.0) as bar:
        for batch in batched(source, BATCH):
            if searcher is not None:
                prefetch(searcher, batch, cfg.min_words, cfg.recover, cfg.recover_k)
            for passage in batch:
                split = "dev" if rng.random() < cfg.dev_fraction else "train"
                ks = rng.choices([1, 2, 3, 4], weights=cfg.k_weights, k=cfg.per_passage)
                made, why = make_tasks(passage, ks, rng, cfg.min_words, choose, searcher, cfg.recover, cfg.recover_k)
                tasks[split] += made
                skipped.update(why)
            bar.update(len(batch))
