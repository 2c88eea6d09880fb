"""One stage's per-step log: `metrics.jsonl` (the source of truth, what the report plots) and
the live trackers the run reports to (TensorBoard, Weights & Biases, Trackio).

    with StepLog(cfg.out, tmp, start=resumed_step, config=asdict(cfg)) as log:
        log.row({"step": 1, "loss": 2.31, "lr": 1e-3})   # a line of metrics.jsonl; train/loss, train/lr
        log.scalars({"heldout/span_acc": 0.4}, step=0)   # trackers only (the stage's JSON keeps it)

A run chooses its trackers once, in the recipe's top-level `report_to` (a list; `--set
report_to=tensorboard`, `minisearch run --report-to wandb`, `none` for none): `trackers()`
checks the choice before any stage runs (a tracker asked for and not installed is an error),
`reporting()` makes it the choice of every StepLog of the run. Unchosen (a stage run by hand
too): TensorBoard when its package is installed, else none.

Where: TensorBoard's event files go to RUN/tensorboard/STAGE/ (STAGE the stage's folder in the
run; a student round's SFT inside traj is traj/student-1/sft), so `tensorboard --logdir RUN`
shows every stage as a run of its own, their like tags overlaid (train/loss of sft and qa-sft).
They live beside the stage folders, not in them: a stage folder appears whole only when it is
complete, and a live view must not lose its curves when `sft.tmp` becomes `sft`. wandb and
trackio get a run per stage in project `minisearch`, grouped by the run folder's name.

Resuming at step `start`: metrics.jsonl keeps its lines up to `start`, TensorBoard purges its
events after `start` (SummaryWriter's purge_step), and nothing is logged again for steps up
to `start`; a stage that starts over (start 0) clears its event folder first.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl, write_jsonl

TRACKERS = {"tensorboard": "pip install tensorboard (`make install` has it: the dev extra)",
            "wandb": "pip install wandb, then `wandb login` (or WANDB_MODE=offline)",
            "trackio": "pip install trackio"}
PROJECT = "minisearch"  # the wandb / trackio project every run logs to
EVENTS = "tensorboard"  # RUN/tensorboard/STAGE/: the event files

_run: dict = {}  # what `reporting` set for the run in progress: root, trackers


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def trackers(report_to=None, where: str = "report_to") -> list[str]:
    """The trackers a run reports to, checked: `report_to` is a list of names, a name, a
    comma-separated string, or "none"/[] for none; None is the default (tensorboard when
    installed). An unknown name or a tracker that is not installed is a UserError."""
    if report_to is None:
        return ["tensorboard"] if installed("tensorboard") else []
    names = report_to.split(",") if isinstance(report_to, str) else report_to
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where} takes a list of tracker names ({', '.join(TRACKERS)}) or none, got {report_to!r}")
    names = [n.strip().lower() for n in names if n.strip() and n.strip().lower() != "none"]
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"{where}: unknown tracker {name!r}; valid: {', '.join(TRACKERS)}, or none")
        if not installed(name):
            raise UserError(f"{where} asks for {name}, which is not installed: {TRACKERS[name]}; or report to "
                            f"the others (--report-to tensorboard, or none)")
    return list(dict.fromkeys(names))


@contextmanager
def reporting(root: str | Path, names: list[str]):
    """Within: every StepLog reports to `names`, its stage placed by its folder in the run at `root`."""
    _run.update(root=Path(root), trackers=list(names))
    try:
        yield
    finally:
        _run.clear()


def place(out: str | Path) -> tuple[Path, str]:
    """(run folder, the stage's name in it) of a stage folder: its path below the run that
    `reporting` set, `.tmp` left off each part; outside a run, its parent and its own name.

    >>> place("runs/demo/traj.tmp/student-1/sft")
    (PosixPath('runs/demo/traj.tmp/student-1'), 'sft')
    """
    out = Path(out)
    root = _run.get("root")
    if root is not None:
        try:
            parts = out.resolve().relative_to(root.resolve()).parts
        except ValueError:
            parts = ()
        if parts:
            return root, "/".join(p.removesuffix(".tmp") for p in parts)
    return out.parent, out.name


def numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The plain numbers of `values` (no bools, no None) as scalars, their keys after `prefix`;
    not `step` (the x axis) nor `n` (how many tasks a held-out score is over).

    >>> numbers({"step": 3, "loss": 0.5, "ok": True, "k": 2, "note": "x", "acc": None, "n": 8}, "train/")
    {'train/loss': 0.5, 'train/k': 2.0}
    """
    return {prefix + k: float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("step", "n")}


class StepLog:
    """The per-step log of the stage whose final folder is `out`: metrics.jsonl in `folder`
    (None: the stage keeps no per-step file, trackers only) and the run's trackers."""

    def __init__(self, out: str | Path, folder: str | Path | None = None, start: int = 0, config: dict | None = None):
        self.start = start
        self.path = Path(folder) / "metrics.jsonl" if folder is not None else None
        if self.path is not None and self.path.is_file():  # a resumed stage logs the steps after `start` again
            write_jsonl(self.path, [r for r in read_jsonl(self.path) if r["step"] <= start])
        root, name = place(out)
        chosen = _run["trackers"] if "trackers" in _run else trackers()
        self.trackers = [_open(t, root, name, start, config or {}) for t in chosen]

    def row(self, row: dict) -> None:
        """One step's line of metrics.jsonl (it must hold "step"); its numbers go to the trackers
        as train/KEY."""
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        self.scalars(numbers(row, "train/"), row["step"])

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Scalars for the trackers only, at `step` (skipped when a resumed log had logged it)."""
        if self.start and step <= self.start:
            return
        for tracker in self.trackers:
            tracker.scalars(values, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open(name: str, root: Path, stage: str, start: int, config: dict):
    if name == "tensorboard":
        return _TensorBoard(root / EVENTS / stage, start)
    return _Hosted(name, root, stage, config)


class _TensorBoard:
    def __init__(self, folder: Path, start: int):
        from torch.utils.tensorboard import SummaryWriter

        if not start:
            shutil.rmtree(folder, ignore_errors=True)  # the stage starts over: its old curves go
        self.writer = SummaryWriter(str(folder), purge_step=start + 1 if start else None, flush_secs=10)

    def scalars(self, values: dict, step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


class _Hosted:
    """wandb or trackio: the same three calls, init(project, name, group, config), run.log(values,
    step), run.finish(); one run per stage, grouped by the run folder's name."""

    def __init__(self, name: str, root: Path, stage: str, config: dict):
        lib = importlib.import_module(name)
        extra = {"dir": str(root), "job_type": stage.split("/")[0]} if name == "wandb" else {}
        self.run = lib.init(project=PROJECT, name=f"{root.name}/{stage}", group=root.name,
                            config=json.loads(json.dumps(config, default=str)), **extra)

    def scalars(self, values: dict, step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()
