"""KernelBench-format tasks: load, validate, hash.

Validation happens in two places: the structure here (parse, the three names), cheaply
and without running the file; running the reference happens only inside a sandbox
(`kernelsmith.harness`), because a task file is code too.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

REQUIRED = {"Model": "class", "get_inputs": "function", "get_init_inputs": "function"}


class TaskError(ValueError):
    """A task file that cannot be used, with a message saying what to fix."""


def content_hash(text: str) -> str:
    normalized = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()
    return hashlib.sha256(normalized.encode()).hexdigest()


@dataclass(frozen=True)
class Task:
    path: Path
    source: str
    hash: str  # of the exact reference a result was checked against

    @property
    def name(self) -> str:
        return self.path.stem

    @classmethod
    def load(cls, path: str | Path) -> "Task":
        p = Path(path)
        if not p.is_file():
            raise TaskError(f"task file not found: {p}")
        try:
            source = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskError(f"cannot read task file {p}: {exc}") from None
        return cls.from_source(source, p)

    @classmethod
    def from_source(cls, source: str, path: str | Path = "<task>") -> "Task":
        validate_source(source, str(path))
        return cls(path=Path(path), source=source, hash=content_hash(source))


def validate_source(source: str, where: str = "<task>") -> None:
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise TaskError(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from None
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found[node.name] = "class"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = "function"
        elif isinstance(node, ast.Assign):  # e.g. get_inputs = make_inputs
            for t in node.targets:
                if isinstance(t, ast.Name):
                    found.setdefault(t.id, "function")
    missing = [f"{kind} {name}" for name, kind in REQUIRED.items() if found.get(name) != kind]
    if missing:
        raise TaskError(
            f"{where} is not a KernelBench-format task: it lacks {', '.join(missing)} "
            "(a task defines class Model(nn.Module), get_inputs() and get_init_inputs())"
        )
