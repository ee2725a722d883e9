"""Evaluator factories for the Ray tests (imported inside Ray workers: PYTHONPATH holds
the repo root and this folder).

make(config): tag-based fake (tests/search/search_fakes.FakeEvaluator) that records the GPU
Ray gave its process; tags `die_once:<file>` (kill the worker unless <file> exists, creating
it first) and `die_always` (kill the worker every time) exercise the failure handling.
make_compiling(config): the real Evaluator with a fake compile (no nvcc) and a fake GPU
stage that reports whether the build was already in its cache."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))

from search_fakes import FakeEvaluator, correct, tag_of  # noqa: E402

from kernelsmith.evaluate.evaluator import OK_MARKER, Evaluator  # noqa: E402
from kernelsmith.results import CompileResult, ErrorClass  # noqa: E402


def _gpu_ids() -> list[str]:
    import ray

    try:
        return [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # noqa: BLE001 - outside a Ray worker
        return []


class TagFake(FakeEvaluator):
    def __init__(self, config):
        super().__init__(delay=float(os.environ.get("KS_FAKE_DELAY", "0")))
        self.config = config
        self.pid = os.getpid()
        self.cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.gpu_ids = _gpu_ids()

    def probe(self):
        return {"pid": self.pid, "cuda_visible_devices": self.cvd, "gpu_ids": self.gpu_ids, "gpu": self.config.gpu}

    def retime(self, task, code):  # a second evaluation, marked as such
        r = self.evaluate_many([(task, code)])[0]
        return dataclasses.replace(r, message="retimed " + r.message)

    def sanitize(self, task, code):  # says where it ran (no profile: that job is missing here)
        return f"memcheck: 0 error(s); racecheck: 0 error(s) [{tag_of(code)} pid={self.pid} cvd={self.cvd}]"

    def evaluate_many(self, items, on_result=None):
        items = list(items)
        out = []
        for i, item in enumerate(items):
            tag = tag_of(item[1]) or ""
            if tag.startswith("die_once:"):
                flag = Path(tag.split(":", 1)[1])
                if not flag.exists():
                    flag.write_text(str(self.pid))
                    os._exit(3)
            if tag == "die_always":
                os._exit(3)
            r = super().evaluate_many([item])[0]
            r = dataclasses.replace(r, candidate_hash=tag, message=f"pid={self.pid} cvd={self.cvd}")
            out.append(r)
            if on_result:
                on_result(i, r)
        return out


def make(config):
    return TagFake(config)


class CompilingFake(Evaluator):
    def __init__(self, config):
        super().__init__(dataclasses.replace(config, sandbox="process"))
        self.seen: list[str] = []

    def probe(self, ceilings=True):
        self.probe_info = {"cuda_available": True,
                           "system": {"gpu": "FakeGPU", "compute_capability": "8.6", "torch": "9.9.9+fake"}}
        return self.probe_info

    def compile(self, task, code):
        if tag_of(code) == "bad":
            return CompileResult(ok=False, error=ErrorClass.COMPILE, backend="load_inline",
                                 message="the CUDA source does not compile", log="kernel.cu(3): error: expected ';'")
        build = self._paths(task, code)[2]
        (build / "ext").mkdir(parents=True, exist_ok=True)
        (build / "ext" / "ext.so").write_bytes(b"\x7fELF" + os.urandom(32))
        (build / "compiled_by").write_text(f"{os.getpid()} {self.root}")
        (build / OK_MARKER).write_text("load_inline")
        time.sleep(0.05)
        return CompileResult(ok=True, backend="load_inline", seconds=0.05)

    def evaluate_many(self, items, on_result=None):
        self.probe()
        out = []
        for i, (task, code) in enumerate(items):
            self.seen.append(tag_of(code))
            build = self._paths(task, code)[2]
            r = correct(1.0)
            if (build / OK_MARKER).exists() and (build / "ext" / "ext.so").exists():
                r.message = f"prebuilt by {(build / 'compiled_by').read_text()} at {build}"
                r.compile.cached = True
            else:
                r.message = "not prebuilt"
            out.append(r)
            if on_result:
                on_result(i, r)
        return out


def make_compiling(config):
    return CompilingFake(config)
