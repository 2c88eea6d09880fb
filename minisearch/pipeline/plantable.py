"""The plan as `minisearch run RECIPE --plan` prints it: a line a stage, the peaks, the total."""

from __future__ import annotations


def table(costs: list, hardware: str, hw: dict) -> str:
    """The stage table of `costs` (plan.Cost) on the profile `hw`, and the `total: H.H h` line."""
    total = sum(c.seconds for c in costs)
    lines = [f"plan on {hardware}: {hw['device']}",
             f"{'stage':<16} {'kind':<10} {'time':>8} {'share':>6} {'RAM GB':>7} {'VRAM GB':>8} {'disk GB':>8}  work"]
    for c in costs:
        work = ", ".join(f"{k.replace('_', ' ')} {_num(v)}" for k, v in c.work.items())
        lines.append(f"{c.stage:<16} {c.kind:<10} {_dur(c.seconds):>8} {c.seconds / total if total else 0:>6.0%} "
                     f"{c.ram_gb:>7.1f} {c.vram_gb:>8.1f} {c.disk_gb:>8.1f}  {work}"
                     + (f"  [{c.note}]" if c.note else ""))
    peak_vram = max(c.vram_gb for c in costs)
    lines.append(f"peak RAM {max(c.ram_gb for c in costs):.1f} GB of {hw['ram_gb']}, VRAM {peak_vram:.1f} GB of "
                 f"{hw['vram_gb']}, disk {sum(c.disk_gb for c in costs):.1f} GB")
    lines.append(f"total: {total / 3600:.1f} h")
    return "\n".join(lines)


def _dur(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def _num(v: float) -> str:
    return f"{v / 1e9:.1f}B" if v >= 1e9 else f"{v / 1e6:.1f}M" if v >= 1e6 else f"{v:,.0f}"
