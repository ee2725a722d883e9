"""Task sources for benchmarks: a KernelBench checkout, its published dataset, our own suite.

All three give `BenchTask`s (a validated `Task` plus level, problem id, name and origin).
Inputs that cannot be used at all (a missing folder, an unreadable file) raise
`BenchInputError` with a message naming the path; a single bad task (a file or row that is
not a KernelBench-format task) becomes a `Skipped` entry with its reason, and loading goes on.

Layouts:
- KernelBench checkout: ``ROOT/KernelBench/level{N}/{problem_id}_{Name}.py`` (ROOT may
  also be the ``KernelBench/`` folder itself);
- dataset: parquet (needs pyarrow) or JSONL rows with columns level, problem_id, name, code;
- suite: ``tasks/level{N}/{NNN}_{name}.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from kernelsmith.task import Task, TaskError

_FILE = re.compile(r"^(\d+)_(.+)\.py$")
_LEVEL_DIR = re.compile(r"^level_?(\d+)$")


class BenchInputError(ValueError):
    """An input that cannot be used (missing folder, unreadable file, bad selection)."""


@dataclass(frozen=True)
class BenchTask:
    task: Task
    level: int | None
    problem_id: int | None
    name: str
    origin: str  # a path, or "kernelbench:L1/P3"

    @property
    def label(self) -> str:
        if self.level is not None and self.problem_id is not None:
            return f"L{self.level}/{self.problem_id} {self.name}"
        return self.name


@dataclass(frozen=True)
class Skipped:
    origin: str
    reason: str
    level: int | None = None
    problem_id: int | None = None
    name: str = ""
    source: str | None = None  # the reference text, where there was one


@dataclass
class Loaded:
    tasks: list[BenchTask] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __iter__(self) -> Iterator[BenchTask]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


# --- selection ------------------------------------------------------------------------

def parse_task_spec(spec: str | None) -> set[int] | None:
    """'1-20,25' -> {1..20, 25}; None / '' / 'all' -> None (everything)."""
    if spec is None or not spec.strip() or spec.strip().lower() == "all":
        return None
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*(?:-|\.\.)\s*(\d+)", part)
        try:
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise BenchInputError(f"--tasks: range {part!r} runs backwards (write {hi}-{lo})")
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
        except ValueError as exc:
            if isinstance(exc, BenchInputError):
                raise
            raise BenchInputError(f"--tasks: cannot read {part!r}; write problem ids like 1-20,25") from None
    if not out:
        raise BenchInputError(f"--tasks {spec!r} selects no problem ids")
    return out


def _levels(levels: int | Iterable[int] | None) -> set[int] | None:
    if levels is None:
        return None
    return {levels} if isinstance(levels, int) else set(levels)


def _wanted(level: int | None, pid: int | None, levels: set[int] | None, ids: set[int] | None) -> bool:
    return (levels is None or level in levels) and (ids is None or pid in ids)


# --- folders (KernelBench checkout and our suite) --------------------------------------------

def _scan(folder: Path, levels: set[int] | None, ids: set[int] | None, origin_of) -> Loaded:
    out = Loaded()
    level_dirs = []
    for d in sorted(folder.iterdir()):
        m = _LEVEL_DIR.match(d.name)
        if d.is_dir() and m:
            level_dirs.append((int(m.group(1)), d))
    if not level_dirs:
        raise BenchInputError(f"{folder} has no level folders (expected {folder}/level1/1_Name.py ...)")
    for level, d in sorted(level_dirs):
        if levels is not None and level not in levels:
            continue
        seen: dict[int, Path] = {}
        files = []
        for f in d.iterdir():
            if f.suffix != ".py" or f.name.startswith("__") or not f.is_file():
                continue
            m = _FILE.match(f.name)
            if not m:
                out.skipped.append(Skipped(str(f), f"file name is not <problem_id>_<Name>.py", level, None, f.stem))
                continue
            files.append((int(m.group(1)), m.group(2), f))
        for pid, name, f in sorted(files):
            if not _wanted(level, pid, levels, ids):
                continue
            origin = origin_of(level, pid, f)
            if pid in seen:
                out.skipped.append(Skipped(origin, f"problem id {pid} of level {level} also in {seen[pid].name}",
                                           level, pid, name))
                continue
            seen[pid] = f
            try:
                source = f.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                out.skipped.append(Skipped(origin, f"cannot read {f}: {exc}", level, pid, name))
                continue
            try:
                task = Task.from_source(source, f)
            except TaskError as exc:
                out.skipped.append(Skipped(origin, str(exc), level, pid, name, source))
                continue
            out.tasks.append(BenchTask(task, level, pid, name, origin))
    return out


def kernelbench_folder(root: str | Path) -> Path:
    """The ``KernelBench/`` folder (holding level1/ ...) of a checkout, given either."""
    p = Path(root).expanduser()
    if not p.is_dir():
        raise BenchInputError(f"no KernelBench checkout at {p}: folder not found")
    for cand in (p / "KernelBench", p):
        if cand.is_dir() and any(_LEVEL_DIR.match(d.name) and d.is_dir() for d in cand.iterdir()):
            return cand
    raise BenchInputError(f"{p} is not a KernelBench checkout: expected {p}/KernelBench/level1/1_Name.py "
                          "(or point --kernelbench at the KernelBench/ folder itself)")


def load_kernelbench(root: str | Path, levels: int | Iterable[int] | None = None,
                     tasks: set[int] | str | None = None) -> Loaded:
    folder = kernelbench_folder(root)
    ids = parse_task_spec(tasks) if isinstance(tasks, str) else tasks
    return _scan(folder, _levels(levels), ids, lambda lv, pid, f: f"kernelbench:L{lv}/P{pid}")


def load_suite(root: str | Path, levels: int | Iterable[int] | None = None,
               tasks: set[int] | str | None = None) -> Loaded:
    p = Path(root).expanduser()
    if not p.is_dir():
        raise BenchInputError(f"no task suite at {p}: folder not found (expected {p}/level1/001_name.py ...)")
    ids = parse_task_spec(tasks) if isinstance(tasks, str) else tasks
    return _scan(p, _levels(levels), ids, lambda lv, pid, f: str(f))


# --- the published dataset ------------------------------------------------------------------

def _int(v) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return None


def read_rows(path: str | Path) -> list[tuple[str, dict | str]]:
    """(where, row) pairs of a .jsonl / .json / .parquet file; a row that is not a JSON
    object comes back as an error string (the caller skips it)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BenchInputError(f"dataset file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BenchInputError(f"reading {p} needs pyarrow: `pip install pyarrow`, or convert the dataset "
                                  "to JSONL (one JSON object per line: level, problem_id, name, code)") from None
        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds
            raise BenchInputError(f"cannot read parquet file {p}: {exc}") from None
        return [(f"{p}: row {i}", r) for i, r in enumerate(rows)]
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchInputError(f"cannot read {p}: {exc}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BenchInputError(f"{p} is not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise BenchInputError(f"{p}: expected a JSON list of rows")
        return [(f"{p}: row {i}", r if isinstance(r, dict) else "not a JSON object") for i, r in enumerate(data)]
    if suffix not in (".jsonl", ".ndjson"):
        raise BenchInputError(f"{p}: unknown dataset format {suffix or '(no suffix)'}; give .parquet or .jsonl")
    out: list[tuple[str, dict | str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}: line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append((where, f"invalid JSON ({exc.msg})"))
            continue
        out.append((where, row if isinstance(row, dict) else "not a JSON object"))
    return out


def row_fields(where: str, row: dict | str) -> tuple[int, int, str] | str:
    """(level, problem_id, name) of a row, or the reason it cannot be used."""
    if isinstance(row, str):
        return row
    level, pid = _int(row.get("level")), _int(row.get("problem_id"))
    if level is None or pid is None:
        return f"needs integer level and problem_id (got level={row.get('level')!r}, " \
               f"problem_id={row.get('problem_id')!r})"
    name = str(row.get("name") or "").strip()
    return level, pid, name


def _task_name(pid: int, name: str) -> str:
    name = name.removesuffix(".py") if name else "problem"
    return name if name.startswith(f"{pid}_") else f"{pid}_{name}"


def load_dataset(path: str | Path, levels: int | Iterable[int] | None = None,
                 tasks: set[int] | str | None = None) -> Loaded:
    lv, ids = _levels(levels), parse_task_spec(tasks) if isinstance(tasks, str) else tasks
    out = Loaded()
    seen: dict[tuple[int, int], str] = {}
    for where, row in read_rows(path):
        fields = row_fields(where, row)
        if isinstance(fields, str):
            out.skipped.append(Skipped(where, f"{where}: {fields}"))
            continue
        level, pid, name = fields
        if not _wanted(level, pid, lv, ids):
            continue
        code = row.get("code")
        origin = f"kernelbench:L{level}/P{pid}"
        if not isinstance(code, str) or not code.strip():
            out.skipped.append(Skipped(origin, f"{where}: no reference code in column 'code'", level, pid, name))
            continue
        if (level, pid) in seen:
            out.skipped.append(Skipped(origin, f"{where}: level {level} problem {pid} repeats {seen[level, pid]}",
                                       level, pid, name))
            continue
        seen[level, pid] = where
        tname = _task_name(pid, name)
        try:
            task = Task.from_source(code, f"level{level}/{tname}.py")
        except TaskError as exc:
            out.skipped.append(Skipped(origin, f"{where}: {exc}", level, pid, name, code))
            continue
        out.tasks.append(BenchTask(task, level, pid, name or tname, origin))
    out.tasks.sort(key=lambda b: (b.level, b.problem_id))
    return out


def load_any(*, suite: str | Path | None = None, kernelbench: str | Path | None = None,
             dataset: str | Path | None = None, levels: int | Iterable[int] | None = None,
             tasks: str | set[int] | None = None) -> Loaded:
    """Exactly one of suite / kernelbench / dataset."""
    given = [(k, v) for k, v in (("suite", suite), ("kernelbench", kernelbench), ("dataset", dataset)) if v]
    if len(given) != 1:
        raise BenchInputError("give exactly one of --suite, --kernelbench or --dataset")
    kind, where = given[0]
    fn = {"suite": load_suite, "kernelbench": load_kernelbench, "dataset": load_dataset}[kind]
    return fn(where, levels, tasks)
