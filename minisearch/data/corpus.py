"""The corpus stage: any source of text -> `corpus/passages.jsonl` ({"id", "contents"}).

    minisearch corpus toyworld:2000 --out runs/demo/corpus      # the built-in fictional world
    minisearch corpus ./notes --out runs/notes/corpus            # .txt/.md/.jsonl, recursively
    minisearch corpus passages.jsonl --out runs/x/corpus --strict
    minisearch corpus hf:wiki18 --out runs/qwen1.5b/corpus       # needs internet and `.[hf]`

Sources: a JSONL file (`{"id","contents"}` with "Title\\ntext", or `{"id","title","text"}`;
`.jsonl.gz` too); a .txt/.md file or a folder of them (cut into ~100-word passages at
sentence boundaries, titled "file: section"); `toyworld[:SIZE]`; `hf:DATASET[:SPLIT]`.
Bad JSON, a missing id or text, empty text and duplicate ids are reported with file and
line: skipped and counted by default, fatal with `strict`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from minisearch.data.textsplit import markdown_sections, pack_sentences, split_sentences
from minisearch.errors import UserError
from minisearch.jsonl import BadLine, iter_jsonl
from minisearch.records import make_passage, split_contents
from minisearch.rundir import stage_folder
from minisearch.settings import Settings, setting

TEXT_SUFFIXES = (".txt", ".md")
# The 21M 100-word passages of the Dec 2018 English Wikipedia that DPR, FlashRAG and
# Search-R1 use, as one gzipped JSONL ({"id","contents"}) in a dataset repository.
HF_ALIASES = {"wiki18": ("json", "hf://datasets/PeterJinGo/wiki-18-corpus/wiki-18.jsonl.gz")}
SOURCES_HELP = ("a passages JSONL file, a .txt/.md file, a folder of .txt/.md/.jsonl files, "
                "`toyworld[:SIZE]` or `hf:DATASET[:SPLIT]`")


@dataclass
class CorpusConfig(Settings):
    source: str = setting(help="A passages JSONL, a folder of .txt/.md/.jsonl files, toyworld[:SIZE] or hf:DATASET.",
                          path=True, arg=True)
    out: str = setting(help="Stage folder to write.")
    strict: bool = setting(False, help="Fail on the first bad line instead of skipping it.")
    passage_words: int = setting(100, help="Passage length for .txt/.md splitting.", min=10)
    seed: int = setting(0, help="Seed for sampled sources.")


@dataclass
class CorpusReport:
    """What was read, kept and skipped, with the first problems by file and line."""

    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    max_problems: int = 20

    def problem(self, where: str, kind: str, reason: str, strict: bool) -> None:
        if strict:
            raise UserError(f"{where}: {reason} (fix or remove it, or drop --strict to skip such lines)")
        self.skipped[kind] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(f"{where}: {reason}")

    def summary(self) -> str:
        lines = [f"read {self.read:,} records, kept {self.kept:,} passages"]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{n:,} {kind}" for kind, n in sorted(self.skipped.items())))
            lines += [f"  {p}" for p in self.problems]
            hidden = sum(self.skipped.values()) - len(self.problems)
            if hidden > 0:
                lines.append(f"  ... and {hidden:,} more")
        return "\n".join(lines)


def iter_passages(source: str, strict: bool = False, report: CorpusReport | None = None,
                  passage_words: int = 100, seed: int = 0) -> Iterator[dict]:
    """Yield clean, uniquely-identified passages from any supported source."""
    report = report if report is not None else CorpusReport()
    first_seen: dict[str, str] = {}
    for where, row in _rows(source, strict, report, passage_words, seed):
        report.read += 1
        if isinstance(row, BadLine):
            report.problem(where, "bad_json", row.reason, strict)
            continue
        passage, kind, reason = _passage(row)
        if passage is None:
            report.problem(where, kind, reason, strict)
        elif passage["id"] in first_seen:
            report.problem(where, "duplicate_id",
                           f"duplicate id {passage['id']!r} (first at {first_seen[passage['id']]})", strict)
        else:
            first_seen[passage["id"]] = where
            report.kept += 1
            yield passage


def _passage(row: dict) -> tuple[dict | None, str, str]:
    """(passage, '', '') or (None, kind, reason) for one input record."""
    pid = row.get("id", row.get("_id", row.get("docid")))
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        return None, "no_id", "no string \"id\""
    if isinstance(row.get("contents"), str):
        title, text = split_contents(row["contents"])
    elif isinstance(row.get("text"), str):
        title, text = str(row.get("title") or ""), row["text"]
    else:
        return None, "no_text", "no \"contents\" or \"text\" string"
    if not text.strip():
        return None, "empty_text", "empty text"
    return make_passage(pid.strip(), title, text), "", ""


def _rows(source, strict, report, words, seed) -> Iterator[tuple[str, dict | BadLine]]:
    """(where, record) pairs from a source; `where` names file and line for messages."""
    if source == "toyworld" or source.startswith("toyworld:"):
        yield from _toyworld_rows(source, seed)
        return
    if source.startswith("hf:"):
        yield from _hf_rows(source[3:])
        return
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if _kind(file):
                yield from _file_rows(file, path, strict, report, words)
            else:
                report.skipped["ignored_files"] += 1
    elif path.is_file() and _kind(path):
        yield from _file_rows(path, path.parent, strict, report, words)
    elif path.is_file():
        raise UserError(f"{path}: unsupported file type; give {SOURCES_HELP}")
    else:
        raise UserError(f"{source}: no such file or folder; give {SOURCES_HELP}")


def source_needs(source: str, why: str) -> list:
    """What reading `source` needs (`minisearch.needs`): for `hf:` the datasets package and the
    hub; the toy world nothing; else the file or folder."""
    from minisearch.needs import HF_EXTRA, Need, file, package

    if source == "toyworld" or source.startswith("toyworld:"):
        return []
    if source.startswith("hf:"):
        name = source[3:].partition(":")[0]
        return [package("datasets", why, HF_EXTRA), Need("dataset", HF_ALIASES.get(name, (name, None))[1] or name, why)]
    return [file(source, why, f"give {SOURCES_HELP}")]


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    return "text" if path.suffix.lower() in TEXT_SUFFIXES else ""


def _file_rows(path: Path, root: Path, strict, report, words) -> Iterator[tuple[str, dict | BadLine]]:
    if _kind(path) == "jsonl":
        for line, obj in iter_jsonl(path):
            yield f"{path}:{line}", obj
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        report.read += 1
        report.problem(str(path), "unreadable", f"cannot read as UTF-8 text ({e})", strict)
        return
    rel = path.relative_to(root).as_posix()
    sections = markdown_sections(text) if path.suffix.lower() == ".md" else [("", " ".join(text.split()))]
    n = 0
    for heading, body in sections:
        title = f"{path.stem}: {heading}" if heading else path.stem
        for chunk in pack_sentences(split_sentences(body), words):
            n += 1
            yield f"{path} (passage {n})", {"id": f"{rel}#{n}", "title": title, "text": chunk}


def _toyworld_rows(source: str, seed: int) -> Iterator[tuple[str, dict]]:
    from minisearch.data.toyworld import build_world

    size = source.partition(":")[2] or "500"
    if not size.isdigit():
        raise UserError(f"{source}: the toy world size must be a number, e.g. toyworld:2000")
    for i, passage in enumerate(build_world(int(size), seed=seed).passages, start=1):
        yield f"toyworld passage {i}", passage


def _hf_rows(spec: str) -> Iterator[tuple[str, dict]]:
    """Rows of a Hugging Face dataset, streamed; a clear error when the hub is out of reach."""
    name, _, split = spec.partition(":")
    try:
        import datasets
    except ImportError as e:
        raise UserError("hf: sources need the `datasets` package: pip install -e '.[hf]'") from e
    builder, files = HF_ALIASES.get(name, (name, None))
    try:
        rows = datasets.load_dataset(builder, data_files=files, split=split or "train", streaming=True)
        iterator = iter(rows)
        first = next(iterator, None)
    except Exception as e:  # the hub's errors vary by version: connection, offline mode, 404
        raise UserError(
            f"could not load the Hugging Face dataset {name!r} ({type(e).__name__}: {str(e)[:200]}). "
            "Is this machine online? Download it on a machine with internet and pass the JSONL file "
            "instead (`minisearch corpus passages.jsonl ...`).") from e
    if first is None:
        return
    yield f"hf:{name} row 1", dict(first)
    for i, row in enumerate(iterator, start=2):
        yield f"hf:{name} row {i}", dict(row)


def run(cfg: CorpusConfig, echo=print) -> Path:
    """Write `<out>/passages.jsonl` and `<out>/report.json`; return the folder."""
    report = CorpusReport()
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        passages = iter_passages(cfg.source, cfg.strict, report, cfg.passage_words, cfg.seed)
        with (tmp / "passages.jsonl").open("w", encoding="utf-8") as f:
            for passage in tqdm(passages, desc="corpus", unit=" passages", mininterval=1.0):
                f.write(json.dumps(passage, ensure_ascii=False) + "\n")
        if report.kept == 0:
            raise UserError(f"{cfg.source}: no usable passages.\n{report.summary()}")
        (tmp / "report.json").write_text(json.dumps(
            {"read": report.read, "kept": report.kept, "skipped": dict(report.skipped),
             "problems": report.problems}, indent=2) + "\n")
        counts.update(passages=report.kept, read=report.read, skipped=sum(report.skipped.values()))
    echo(report.summary())
    return Path(cfg.out)
