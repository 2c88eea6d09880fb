"""Stage folders that appear whole or not at all.

A stage writes into ``<name>.tmp`` beside its final folder; when it finishes, ``done.json``
(config hash, counts, seconds) is written and the folder is renamed into place. A killed
stage leaves only the ``.tmp`` folder, which the next attempt clears; a completed stage
is never half-overwritten.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DONE = "done.json"


def config_hash(config: dict, folder: str | Path) -> str:
    """A short stable hash of a stage's JSON-able config, wherever its run folder lies.

    A path inside the run (the parent of the stage's `folder`) counts by its place in the
    run, so a run folder that was moved, copied or reached from another directory is still
    complete; `minisearch run --set out=ELSEWHERE` picks it up without redoing anything.
    """
    blob = json.dumps(run_relative(config, Path(folder).parent, mark="<run>/"), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def run_relative(value, root: str | Path, mark: str = ""):
    """`value` (a JSON-able config) with every path inside the run folder `root` written
    relative to it, after `mark`; other values as they are."""
    root = str(root)
    if isinstance(value, dict):
        return {k: run_relative(v, root, mark) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [run_relative(v, root, mark) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root + "/")):
        return mark + (value[len(root) + 1:] or ".")
    return value


def read_done(folder: str | Path) -> dict | None:
    """The done.json of a completed stage folder, or None if it is not complete."""
    return _read(Path(folder) / DONE)


def is_complete(folder: str | Path, config: dict) -> bool:
    """Whether `folder` is a completed stage made from this very config."""
    done = read_done(folder)
    return done is not None and done.get("config_hash") == config_hash(config, folder)


def _read(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


STARTED = "stage.json"


@contextmanager
def stage_folder(final: str | Path, config: dict, resume: bool = False) -> Iterator[tuple[Path, dict]]:
    """Yield (temporary folder, counts dict); on success write done.json and move it to `final`.

    The body fills the counts dict; it lands in done.json. On an exception the temporary
    folder stays for inspection and `final` is untouched. With `resume`, a temporary folder
    left by an interrupted attempt with the same config is kept (its checkpoints are the
    stage's to use); otherwise it is cleared.
    """
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    started = {"config_hash": config_hash(config, final)}
    if tmp.exists() and not (resume and _read(tmp / STARTED) == started):
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / STARTED).write_text(json.dumps(started) + "\n")
    counts: dict = {}
    start = time.time()
    yield tmp, counts
    done = {"config_hash": started["config_hash"], "config": config, "counts": counts,
            "seconds": round(time.time() - start, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (tmp / DONE).write_text(json.dumps(done, indent=2, default=str) + "\n")
    if final.exists():
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)

