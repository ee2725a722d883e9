"""The jobs a sandboxed child can run; each returns a JSON-able dict.

This module is imported by the fork server before any fork, so it must stay cheap and
must not initialise CUDA at import time.
"""

from __future__ import annotations

from typing import Any, Callable


def _probe(args: dict) -> dict:
    from kernelsmith.harness import probe

    return probe.run(args)


def _compile(args: dict) -> dict:
    from kernelsmith.harness import compile as comp

    return comp.run(args)


def _evaluate(args: dict) -> dict:
    from kernelsmith.harness import evaluate

    return evaluate.run(args)


def _baseline(args: dict) -> dict:
    from kernelsmith.harness import baseline

    return baseline.run(args)


def _profile(args: dict) -> dict:
    from kernelsmith.harness import gputools

    return gputools.profile(args)


def _sanitize(args: dict) -> dict:
    from kernelsmith.harness import gputools

    return gputools.sanitize(args)


def _script(args: dict) -> dict:
    """Run a Python file and return what its `main()` returns (sandbox conformance tests)."""
    import runpy

    ns = runpy.run_path(args["path"], run_name="ks_script")
    fn = ns.get("main")
    return {"returned": fn() if callable(fn) else None}


def _selfcheck(args: dict) -> dict:
    """`kernelsmith doctor`'s tiny real job: import what every job imports, write into the
    cache directory it was given, report who it ran as."""
    import os

    import torch

    import kernelsmith

    path = os.path.join(args["out"], "selfcheck.txt")
    with open(path, "w") as f:
        f.write(torch.__version__)
    x = torch.ones(4)
    return {"uid": os.getuid(), "torch": torch.__version__, "kernelsmith": kernelsmith.__file__,
            "wrote": path, "sum": float((x + x).sum())}


JOBS: dict[str, Callable[[dict], dict]] = {
    "selfcheck": _selfcheck,
    "probe": _probe,
    "compile": _compile,
    "evaluate": _evaluate,
    "baseline": _baseline,
    "profile": _profile,
    "sanitize": _sanitize,
    "script": _script,
}


def run(name: str, args: dict[str, Any]) -> dict:
    try:
        job = JOBS[name]
    except KeyError:
        raise ValueError(f"unknown job {name!r}; known: {sorted(JOBS)}") from None
    return job(args)
