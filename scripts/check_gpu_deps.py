"""Summarise a `pip install --dry-run --report FILE` run for the gpu extra (`make check-gpu-deps`).

Prints the resolved version and wheel of each package the GPU path rests on; exits 1 when any
of them is missing from the report (the extra lost a piece, or a marker left it out).
"""

import json
import sys

WANTED = ["torch", "transformers", "vllm", "unsloth", "unsloth-zoo", "vllm-bnb-plugin", "trl", "bitsandbytes", "peft",
          "datasets", "fanoutqa"]  # the last two: the hf extra, which make install-gpu installs beside the gpu one


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def main(path: str) -> int:
    with open(path) as f:
        report = json.load(f)
    resolved = {}
    for item in report["install"]:
        meta = item["metadata"]
        wheel = item.get("download_info", {}).get("url", "").rsplit("/", 1)[-1]
        resolved[canonical(meta["name"])] = (meta["version"], wheel)
    env = report.get("environment", {})
    print(f"pip {report.get('pip_version', '?')} resolved {len(resolved)} packages for Python "
          f"{env.get('python_full_version', '?')} on {env.get('platform_machine', '?')}:")
    missing = [name for name in WANTED if name not in resolved]
    for name in WANTED:
        version, wheel = resolved.get(name, ("MISSING", ""))
        print(f"  {name:16} {version:12} {wheel}")
    if missing:
        print(f"missing from the resolution: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
