"""Runs `kernelsmith optimize` (the real CLI code path) in a child process with the GPU
evaluator replaced by the tag-keyed fake, for the resilience tests.

argv: the CLI's arguments after `optimize` (e.g. TASK --model fake-model --base-url URL --db URL).
Environment:
  KS_FSIZE         bytes: RLIMIT_FSIZE for this process (SIGXFSZ ignored, so writes fail with EFBIG)
  KS_EVAL_DELAY    seconds per evaluator batch (default 0)
  KS_INVALID_TASK  "1": every candidate's result is INVALID_TASK (a broken reference)
  KS_MAX_RETRIES   the model client's retries (default 2); its backoff is 10 ms
  KS_EVAL_LOG      a file: one line appended per evaluated candidate (to count evaluator work)
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import kernelsmith.evaluate.evaluator as evaluator_mod  # noqa: E402
import kernelsmith.llm.client as client_mod  # noqa: E402
from kernelsmith.results import EvalResult, Verdict  # noqa: E402
from tests.agent.common import evaluator_for  # noqa: E402


class FakeGPUEvaluator:
    """Stands in for kernelsmith.evaluate.evaluator.Evaluator inside the CLI."""

    def __init__(self, cfg=None, *a, **k):
        self.inner = evaluator_for(float(os.environ.get("KS_EVAL_DELAY", "0")))
        self.invalid = os.environ.get("KS_INVALID_TASK") == "1"
        self.log = os.environ.get("KS_EVAL_LOG")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def probe(self, ceilings: bool = True) -> dict:
        return {"system": {"gpu": "FAKE"}}

    def evaluate_many(self, items, on_result=None):
        items = list(items)
        if self.log:
            with open(self.log, "a") as f:
                f.write("x\n" * len(items))
        if self.invalid:
            out = [EvalResult(Verdict.INVALID_TASK, "t", "c",
                              message="the reference failed: RuntimeError: get_inputs exploded") for _ in items]
            for i, r in enumerate(out):
                if on_result:
                    on_result(i, r)
            return out
        return self.inner.evaluate_many(items, on_result=on_result)


_make_model = client_mod.make_model


def fast_make_model(spec, base_url=None, api_key=None, record=None, **kw):
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    kw.setdefault("max_retries", int(os.environ.get("KS_MAX_RETRIES", "2")))
    kw.setdefault("timeout_s", 5)
    return _make_model(spec, base_url=base_url, api_key=api_key, record=record, **kw)


def main() -> None:
    evaluator_mod.Evaluator = FakeGPUEvaluator
    client_mod.make_model = fast_make_model
    limit = os.environ.get("KS_FSIZE")
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    from kernelsmith.cli import main as cli_main

    sys.argv = ["kernelsmith", "optimize", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
