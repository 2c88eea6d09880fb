"""Does a model copy by content? Next-token accuracy on a span the first time and when it repeats.

    python bench/induction.py --model runs/demo/warmup --corpus runs/demo/corpus

A search agent copies: the title from its prompt into a query, a name from the results into
its answer. A pretrained LLM does it with induction heads (find the earlier place where the
current token stood, predict what followed it). This probe cuts a 16-token span from the
corpus, writes `gap` tokens of the text that followed it, then the span again, and reads the
model's argmax predictions on tokens 4-16 of both copies. A model that copies scores far
higher on the repeat than on the first reading; the gap varies so a copy learned at one
fixed distance does not pass for one. The baseline is the same model on the first copy.
A second table does the same with 16 tokens drawn at random from the corpus (by frequency):
nothing predicts them the first time, so the repeat's score is copying alone.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisearch.agent.backends.cpu import CpuBackend  # noqa: E402
from minisearch.data.corpus import iter_passages  # noqa: E402

SPAN, LEAD, SKIP = 16, 30, 3


def probe(backend, stream: list[int], gaps: list[int], trials: int, seed: int = 0,
          random_tokens: bool = False) -> list[tuple[int, float, float]]:
    """(gap, accuracy on the first copy, accuracy on the repeat) for each gap; the span is
    corpus text, or with `random_tokens` corpus tokens drawn at random."""
    import torch

    model, rng, rows = backend.model.eval(), random.Random(seed), []
    for gap in gaps:
        first = again = n = 0
        for _ in range(trials):
            s = rng.randrange(LEAD, len(stream) - SPAN - gap - 1)
            span = [rng.choice(stream) for _ in range(SPAN)] if random_tokens else stream[s:s + SPAN]
            seq = stream[s - LEAD:s] + span + stream[s + SPAN:s + SPAN + gap] + span
            with torch.no_grad():
                pred = model(input_ids=torch.tensor([seq[:-1]])).logits[0].argmax(-1).tolist()
            repeat = LEAD + SPAN + gap
            for j in range(SKIP, SPAN):
                first += pred[LEAD + j - 1] == seq[LEAD + j]
                again += pred[repeat + j - 1] == seq[repeat + j]
                n += 1
        rows.append((gap, first / n, again / n))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--gaps", default="8,40,48,120,300")
    ap.add_argument("--trials", type=int, default=60)
    args = ap.parse_args()
    backend = CpuBackend(args.model)
    tok = backend.tokenizer
    stream = [t for p in iter_passages(args.corpus) for t in tok(p["contents"], add_special_tokens=False)["input_ids"]]
    gaps = [int(g) for g in args.gaps.split(",")]
    for what, random_tokens in (("corpus span", False), ("span of random corpus tokens", True)):
        print(f"model {args.model}: tokens {SKIP + 1}-{SPAN} of a {SPAN}-token {what}, {args.trials} spans a row\n")
        print("| gap (tokens) | first copy | repeat | repeat / first |")
        print("|---|---|---|---|")
        for gap, first, again in probe(backend, stream, gaps, args.trials, random_tokens=random_tokens):
            ratio = f"{again / first:.2f}" if first >= 0.01 else "-"
            print(f"| {gap} | {first:.2f} | {again:.2f} | {ratio} |")
        print()


if __name__ == "__main__":
    main()
