from __future__ import annotations

import re
import zlib

from kernelsmith.search import Budget, Candidate, SearchContext, make_strategy, run_search
from kernelsmith.search.evolve import Evolve
from search_fakes import (
    FakeEvaluator, FakeLLM, compile_error, correct, diff_reply, incorrect, kernel, reply, tag_of, task,
)

PARENT = re.compile(r"## The kernel to improve\n```python\n.*?# kernel: (\S+)", re.S)


def writer(messages, i):
    """Fresh prompts get a new kernel; evolve prompts get edits of the parent or a rewrite, as asked."""
    text = messages[-1]["content"]
    m = PARENT.search(text)
    if m and "<<<<<<< SEARCH" in text:
        return diff_reply(m.group(1), f"k{i}")
    return reply(f"k{i}")


def result_of(tag: str):
    h = zlib.crc32(tag.encode())
    if h % 7 == 0:
        return incorrect(speedup=30.0)
    if h % 11 == 0:
        return compile_error()
    return correct(0.5 + (h % 40) / 10)


def run(strategy, budget, existing=(), start=0, concurrency=2):
    llm = FakeLLM(writer, start=start)
    out = run_search(task(), strategy, llm, FakeEvaluator(default=result_of), budget, existing=existing,
                     llm_concurrency=concurrency, overlap=False)
    return llm, out


def evolve(**kw):
    return make_strategy("evolve", task(), SearchContext(seed=7), **{"islands": 3, "seeds": 1, **kw})


class Watched(Evolve):
    """Checks at every proposal that the parent and inspirations come from the island's archive."""

    def propose(self, k):
        before = [set(isl.archive.values()) for isl in self.islands]
        out = super().propose(k)
        for p in out:
            info = p.strategy_info
            if info["op"] != "fresh":
                assert p.parents[0] in before[info["island"]]
                assert set(info["inspirations"]) <= before[info["island"]] - {p.parents[0]}
                self.checked += 1
        return out

    checked = 0


def test_parents_come_from_the_island_archive_and_diffs_apply():
    s = Watched(task(), SearchContext(seed=7), islands=3, seeds=1, diff_prob=1.0, inspirations=2)
    llm, out = run(s, Budget(max_candidates=30))
    assert s.checked >= 20
    ops = [c.strategy_info["op"] for c in out.candidates]
    assert ops[:3] == ["fresh"] * 3 and set(ops[3:]) == {"diff"}
    assert [c.strategy_info["island"] for c in out.candidates[:6]] == [0, 1, 2, 0, 1, 2]
    by_id = {c.id: c for c in out.candidates}
    for c in out.candidates[3:]:
        parent = by_id[c.parents[0]]
        assert c.strategy_info["mode"] == "diff" and "<<<<<<< SEARCH" in c.prompt[-1]["content"]
        assert c.code == parent.code.replace(f"# kernel: {tag_of(parent.code)}", f"# kernel: {tag_of(c.code)}")
        assert c.result is not None  # the edit applied and was evaluated


def test_full_rewrites_when_diff_prob_is_zero():
    llm, out = run(evolve(diff_prob=0.0), Budget(max_candidates=9))
    assert {c.strategy_info["op"] for c in out.candidates[3:]} == {"full"}
    assert all("<<<<<<< SEARCH" not in c.prompt[-1]["content"] for c in out.candidates)


def test_migration_every_m_evaluated_candidates():
    fmt = {5, 11}  # two replies without code: they are not evaluated and don't count

    def sometimes_broken(messages, i):
        return "no code, sorry" if i in fmt else writer(messages, i)

    s = evolve(migrate_every=4)
    out = run_search(task(), s, FakeLLM(sometimes_broken), FakeEvaluator(default=result_of),
                     Budget(max_candidates=26), llm_concurrency=1, overlap=False)
    assert out.stats.format_errors == 2 and s.evaluated == 24
    assert sorted({m["at"] for m in s.migrations}) == [4, 8, 12, 16, 20, 24]
    assert all(len([m for m in s.migrations if m["at"] == at]) == 3 for at in (4, 8, 12, 16, 20, 24))
    for m in s.migrations:
        assert m["to"] == (m["from"] + 1) % 3 and m["id"] in s.islands[m["to"]].members
    # each island's best is in the next island's archive unless a fitter elite holds its cell
    for i in range(3):
        b = s.best(i)
        nxt = s.islands[(i + 1) % 3]
        holder = nxt.archive.get(s.cell(b))
        assert holder is not None and (holder == b.id or s.seen[holder].result.speedup >= b.result.speedup)


def test_map_elites_keeps_the_fittest_per_cell():
    s = evolve(length_edges=(8,))
    short, long_ = kernel("a"), kernel("b") + "\n".join(f"x{i} = {i}" for i in range(10))
    cands = [Candidate(short, id="s1", result=correct(1.2)), Candidate(short.replace("a", "c"), id="s2",
                                                                     result=correct(1.4)),
             Candidate(long_, id="l1", result=correct(1.3)), Candidate(short, id="s3", result=correct(4.0)),
             Candidate(short, id="w", result=incorrect(speedup=80.0)), Candidate("", id="f", format_error="x")]
    for c in cands:
        s.seen[c.id] = c
        s.insert(0, c)
    arch = s.islands[0].archive
    # 1.2 and 1.4 share a cell (1 <= s < 1.5, short); 4.0 (3 <= s < 5) has its own, so has the long
    # kernel; the wrong one sits in the failed row whatever speed it claims; the format error nowhere
    assert arch == {(3, 0): "s2", (3, 1): "l1", (6, 0): "s3", (0, 0): "w"}
    assert s.best(0).id == "s3" and "f" in s.islands[0].members


def test_proportional_selection_runs():
    llm, out = run(evolve(selection="proportional"), Budget(max_candidates=12))
    assert len(out.candidates) == 12


def test_resume_reproduces_the_uninterrupted_run():
    full_llm, full = run(evolve(migrate_every=5), Budget(max_candidates=24))
    part_llm, part = run(evolve(migrate_every=5), Budget(max_candidates=12))
    s = evolve(migrate_every=5)
    rest_llm, rest = run(s, Budget(max_candidates=24), existing=part.candidates, start=len(part_llm.calls))
    assert part_llm.prompts + rest_llm.prompts == full_llm.prompts
    assert [(c.id, c.code, c.parents) for c in rest.candidates] == [(c.id, c.code, c.parents) for c in full.candidates]
    ref = evolve(migrate_every=5)
    ref.restore(full.candidates)
    assert [i.archive for i in s.islands] == [i.archive for i in ref.islands]
    assert s.migrations == ref.migrations and s.migrations
