"""Can the agent copy? Teacher-forced accuracy on the first token of each query and answer.

    minisearch traj runs/demo/ramp/dev.jsonl --index runs/demo/index --out runs/demo/traj-dev --answer-form spans
    python bench/copy_probe.py --model runs/demo/model --adapter runs/demo/sft/adapter \\
        --traj runs/demo/traj-dev/round-0.jsonl

Feeds accepted teacher trajectories (held-out ones, made from the dev tasks as above) to the
model and reads its argmax prediction at every target token. The first token after
`<search>` is a title that must be looked up in the prompt, the first after `<answer>` a
name that must be found in the results; the rest of a name a model can continue by
induction. Span accuracy stays 0 until both lookups work, so this shows progress first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisearch.agent.backends.cpu import CpuBackend  # noqa: E402
from minisearch.agent.protocol import ANSWER, SEARCH  # noqa: E402
from minisearch.agent.rollout import from_record, render  # noqa: E402
from minisearch.jsonl import read_jsonl  # noqa: E402


def probe(backend, records: list[dict]) -> dict[str, tuple[int, int]]:
    """(right, total) for the first query token, the first answer token, and every target."""
    import torch

    tok, model = backend.tokenizer, backend.model
    tags = {tok.convert_tokens_to_ids(f"<{SEARCH}>"): "first query token",
            tok.convert_tokens_to_ids(f"<{ANSWER}>"): "first answer token"}
    hits = {name: [0, 0] for name in [*tags.values(), "every target token"]}
    model.eval()
    for record in records:
        ids, mask = render(from_record(tok, record))
        with torch.no_grad():
            guess = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
        for i in range(len(ids) - 1):
            if mask[i + 1]:
                hits["every target token"][0] += guess[i] == ids[i + 1]
                hits["every target token"][1] += 1
            if ids[i] in tags and mask[i + 1]:
                j = i + 2 if i + 2 < len(ids) and not tok.decode([ids[i + 1]]).strip() else i + 1  # past a space
                hits[tags[ids[i]]][0] += guess[j - 1] == ids[j]
                hits[tags[ids[i]]][1] += 1
    return {k: (a, n) for k, (a, n) in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--traj", required=True, help="trajectory JSONL (a traj stage's round-N.jsonl)")
    ap.add_argument("--limit", type=int, default=200)
    args = ap.parse_args()
    records = list(read_jsonl(args.traj))[:args.limit]
    hits = probe(CpuBackend(args.model, adapter=args.adapter), records)
    print(f"{len(records)} trajectories from {args.traj}; model {args.model}, adapter {args.adapter}")
    print("| target | right | of | share |\n|---|---|---|---|")
    for name, (right, total) in hits.items():
        print(f"| {name} | {right} | {total} | {right / max(1, total):.2f} |")
    print(json.dumps({k: round(a / max(1, n), 4) for k, (a, n) in hits.items()}))


if __name__ == "__main__":
    main()
