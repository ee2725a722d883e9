"""pass@k, fast_p@k and proficiency: against hand-computed values and brute-force enumeration,
and the leaderboard's language x task table from a runs.db with samples in several languages."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math

import pytest

from kernelsmith.leaderboard import build, metrics as mt, render
from kernelsmith.leaderboard import lang_table
from kernelsmith.search.types import Candidate
from kernelsmith.store.runs import RunStore
from lb_helpers import H200, correct, failed, task


def _brute(n: int, c: int, k: int) -> float:
    """The fraction of the k-subsets of n samples (c of them passing) that hold a pass."""
    items = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(items[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_hand_values():
    assert mt.pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c / n
    assert mt.pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))  # 1 - 21/252
    assert mt.pass_at_k(10, 3, 5) == pytest.approx(11 / 12)
    assert mt.pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert mt.pass_at_k(5, 0, 3) == 0.0
    assert mt.pass_at_k(5, 3, 3) == 1.0  # n - c < k: every 3 of 5 holds a pass
    assert mt.pass_at_k(3, 3, 5) is None  # fewer samples than k


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_brute_force_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert mt.pass_at_k(n, c, k) == pytest.approx(_brute(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_for_large_n():
    # C(1000, 100) overflows a float; the product form does not
    v = mt.pass_at_k(1000, 10, 100)
    assert v == pytest.approx(1 - math.comb(990, 100) / math.comb(1000, 100), rel=1e-9)
    assert 0.0 < v < 1.0


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        mt.pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        mt.pass_at_k(3, 1, 0)


def test_fast_p_at_k_counts_only_fast_correct_samples():
    st = mt.SampleStats("cupy", "h", "t", [True, True, False, True], [2.0, 0.9, None, 1.5])
    assert st.fast(1.0) == 2 and st.fast(1.6) == 1
    assert st.fast_at(1.0, 1) == pytest.approx(0.5)
    assert st.fast_at(1.0, 2) == pytest.approx(_brute(4, 2, 2))
    assert st.pass_at(1) == pytest.approx(0.75)


@pytest.mark.parametrize("first,level", [
    ([], None),
    ([False] * 10, 0.0),
    ([False, True] + [False] * 8, 0.25),          # one correct among incorrect
    ([True] + [False] * 9, 0.25),
    ([False, True, False, True] + [False] * 6, 0.5),  # several, mixed in
    ([True, True, True] + [False] * 7, 0.75),      # several, all ahead of the incorrect
    ([True] * 10, 1.0),
    ([True] * 10 + [False] * 5, 1.0),             # only the first 10 count
    ([False] * 10 + [True] * 5, 0.0),
])
def test_proficiency_levels(first, level):
    assert mt.proficiency(first) == level
    if level is not None:
        assert mt.proficiency_label(level) in ("non-knowledge", "novice", "learner", "proficient", "expert")


CUPY = "import cupy as cp\nimport torch\n# kernel {i}\nclass ModelNew: ...\n"
TRITON = "import triton\nimport triton.language as tl\nimport torch\n# kernel {i}\nclass ModelNew: ...\n"
CUDA = "import torch\nfrom torch.utils.cpp_extension import load_inline\n# kernel {i}\nclass ModelNew: ...\n"


@pytest.fixture()
def sampled(tmp_path):
    """One bench-like run over two tasks: relu has 4 CuPy + 2 Triton samples, gelu 3 CUDA
    samples, plus one CuPy sample never evaluated (not a sample)."""
    store = RunStore(tmp_path / "runs.db")
    relu, gelu = task("relu"), task("gelu")
    store.upsert_task(relu, level=1, problem_id=1, origin="t")
    store.upsert_task(gelu, level=1, problem_id=2, origin="t")
    rid = store.create_run("bench", "gpt-x", "best-of-n", {}, {})
    i = 0

    def add(t, code, result):
        nonlocal i
        i += 1
        cid = store.add_candidate(rid, t.hash, Candidate(code=code.format(i=i)))
        if result is not None:
            store.add_evaluation(cid, result)

    for t in (relu, gelu):
        store.set_run_task(rid, t.hash, "running")
    for r in (failed(relu, H200), correct(relu, 2.0, H200), correct(relu, 0.5, H200), failed(relu, H200)):
        add(relu, CUPY, r)
    add(relu, CUPY, None)
    for r in (correct(relu, 1.5, H200), correct(relu, 3.0, H200)):
        add(relu, TRITON, r)
    for r in (failed(gelu, H200), failed(gelu, H200), failed(gelu, H200)):
        add(gelu, CUDA, r)
    for t in (relu, gelu):
        store.set_run_task(rid, t.hash, "done")
    store.set_run_status(rid, "finished")
    yield store, rid, relu, gelu
    store.close()


def test_leaderboard_language_table(sampled):
    store, rid, relu, gelu = sampled
    lb = build(store)
    (run,) = lb.runs
    got = {(s.language, s.name): s for s in run.samples}
    assert set(got) == {("cupy", relu.name), ("triton", relu.name), ("cuda", gelu.name)}
    cupy = got["cupy", relu.name]
    assert (cupy.n, cupy.correct, cupy.fast(1.0)) == (4, 2, 1)  # the unevaluated one is no sample
    assert cupy.pass_at(1) == pytest.approx(0.5) and cupy.fast_at(1.0, 1) == pytest.approx(0.25)
    assert cupy.proficiency == 0.5  # F T T F: several correct, mixed in
    assert got["triton", relu.name].proficiency == 1.0
    assert got["cuda", gelu.name].proficiency == 0.0 and got["cuda", gelu.name].pass_at(1) == 0.0

    md = render(lb, "md")
    assert "## Language x task" in md
    row = next(line for line in md.splitlines() if line.startswith("| cupy |"))
    assert "2/4 · pass@1 0.50 · fast_1@1 0.25 · prof 0.50" in row
    assert "| triton |" in md and "| cuda |" in md

    rows = list(csv.DictReader(io.StringIO(lang_table.render_csv(lb))))
    assert {(r["language"], r["task"], r["n"], r["correct"]) for r in rows} == {
        ("cupy", relu.name, "4", "2"), ("triton", relu.name, "2", "2"), ("cuda", gelu.name, "3", "0")}
    assert all(r["pass@10"] == "" for r in rows)  # n < 10: no pass@10
    j = json.loads(render(lb, "json"))
    langs = j["groups"][0]["runs"][0]["languages"]
    assert {(x["language"], x["proficiency_level"]) for x in langs} == {
        ("cupy", "learner"), ("triton", "expert"), ("cuda", "non-knowledge")}
    html = render(lb, "html")
    assert "Language x task" in html and 'data-language="triton"' in html


def test_csv_export_writes_the_language_table_beside_it(sampled, tmp_path):
    from kernelsmith.leaderboard import write

    store, *_ = sampled
    paths = write(build(store), "csv", tmp_path / "board.csv", pngs=False)
    assert [p.name for p in paths] == ["board.csv", "board_languages.csv"]
    assert paths[1].read_text().startswith("reference_set,run_id,")
