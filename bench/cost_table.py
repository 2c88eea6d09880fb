"""What each shipped recipe costs on each hardware profile, from `minisearch run RECIPE --plan`.

    python bench/cost_table.py            # the markdown table in the README ("What it costs")

Hours are the plan's total; VRAM its largest stage; a recipe whose VRAM exceeds the card is
marked "does not fit". The figures behind it are in minisearch/pipeline/hardware.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minisearch.pipeline.plan import plan_recipe, profiles  # noqa: E402


def main() -> None:
    names = list(profiles()["profiles"])
    recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    print("| recipe | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for recipe in recipes:
        cells = []
        for name in names:
            costs, _ = plan_recipe(str(recipe), [], name)
            hours = sum(c.seconds for c in costs) / 3600
            vram = max(c.vram_gb for c in costs)
            card = profiles()["profiles"][name]["vram_gb"]
            gpu = any(c.gpu for c in costs)
            if gpu and not card:
                cells.append("needs a GPU")
            elif gpu and vram > card:
                cells.append(f"does not fit ({vram:.0f} GB)")
            else:
                when = f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"
                cells.append(when + (f", {vram:.0f} GB VRAM" if gpu else ""))
        print(f"| {recipe.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
