"""Content-addressed JSON caches on disk: evaluations, baselines, GPU ceilings.

Keys include everything that can change a result: the candidate's code, the exact
reference, the GPU, its driver, torch, the harness version and the check settings.
Writes are atomic (write to a temporary file, then rename), so a killed run never
leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def key(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class JsonCache:
    def __init__(self, root: Path, kind: str):
        self.dir = Path(root) / kind
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, k: str) -> dict | None:
        try:
            return json.loads((self.dir / f"{k}.json").read_text())
        except (OSError, ValueError):
            return None

    def put(self, k: str, value: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
        os.replace(tmp, self.dir / f"{k}.json")
