"""Fast inline builds on a real GPU (issue 15): the light fixtures are correct, built in the
light layout; and a fast build's extension computes exactly what the candidate's own
layout (plain load_inline) computes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kernelsmith.task import Task
from tests.gpu.conftest import ROOT

LIGHT = ROOT / "tests" / "fixtures" / "inline"
FIXTURES = sorted(LIGHT.glob("level*.py"))


def task_of(p: Path) -> Task:
    level, rest = p.stem.split("_", 1)
    return Task.load(ROOT / "tasks" / level / f"{rest}.py")


@pytest.fixture(scope="module")
def results(evaluator):
    items = [(task_of(p), p.read_text()) for p in FIXTURES]
    return dict(zip([p.name for p in FIXTURES], evaluator.evaluate_many(items))), items


@pytest.mark.gpu
@pytest.mark.parametrize("fixture", [p.name for p in FIXTURES])
def test_light_fixture_is_correct_and_built_light(results, evaluator, fixture):
    got, items = results
    r = got[fixture]
    assert r.verdict.value == "correct", f"{r.verdict.value} ({r.error.value}): {r.message}\n{r.output[-800:]}"
    task, code = items[[p.name for p in FIXTURES].index(fixture)]
    build = evaluator._paths(task, code)[2]
    markers = list(build.glob("*/.ks_layout"))
    assert markers and json.loads(markers[0].read_text())["layout"] == "light"


def _call(path: Path) -> dict:
    """The load_inline keyword arguments a fixture passes (its module-level strings)."""
    ns: dict = {}
    src = path.read_text()
    head = src.split("_ext = load_inline(", 1)[0]
    exec(compile(head, str(path), "exec"), ns)  # noqa: S102 - our own fixture's string constants
    args = re.search(r"_ext = load_inline\((.*?)\n\)", src, re.S).group(1)
    return eval(f"dict({args})", ns)  # noqa: S307 - ditto


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("fixture,func,args", [
    (LIGHT / "level1_011_elu.py", "elu_forward", ("x", 1.3, "stream")),
    (ROOT / "tests" / "fixtures" / "solutions" / "level1_001_leaky_relu_scale" / "correct_inline.py", None, None),
])
def test_fast_and_plain_builds_compute_the_same(tmp_path, fixture, func, args):
    import torch
    import torch.utils.cpp_extension as cpp

    from kernelsmith.harness.build import inline, layout, pch, split

    call = _call(fixture)
    call["verbose"] = False
    root = tmp_path / "pch"
    pch.build(str(root), call.get("extra_cflags") or (), kind=layout.main_kind(call.get("cpp_sources")))
    built = {}
    for fast in (True, False):
        rec = dict(call, name=f"{call['name']}_{'fast' if fast else 'plain'}")
        log = inline.BuildLog()
        built[fast] = inline.build_inline(lambda kw, where: cpp.load_inline(**kw, build_directory=where), rec,
                                          str(tmp_path / ("fast" if fast else "plain")), pch_root=str(root),
                                          log=log, fast=fast)
        want = layout.choose(rec) if fast else layout.HEAVY
        cuda = rec.get("cuda_sources")
        if want == layout.PCH and split.enabled() and split.split([cuda] if isinstance(cuda, str) else cuda):
            want = layout.SPLIT  # KERNELSMITH_SPLIT_SOURCES=1: the kernels light, the wrapper in main.cpp
        assert log.calls[0]["layout"] == want and not log.calls[0]["fell_back"], log.calls
    torch.manual_seed(0)
    x = torch.randn(4096, 1024, device="cuda")
    fn = func or call["functions"][0]
    if args is None:  # the LLM-style fixture: forward(x, scale)
        outs = [getattr(built[f], fn)(x, 1.7) for f in (True, False)]
    else:
        real = [x if a == "x" else torch.cuda.current_stream().cuda_stream if a == "stream" else a for a in args]
        outs = [getattr(built[f], fn)(*real) for f in (True, False)]
    torch.cuda.synchronize()
    assert torch.equal(outs[0], outs[1])  # bit for bit
