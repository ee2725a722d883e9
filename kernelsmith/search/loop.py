"""The agent loop: strategy proposes, the model writes, the evaluator judges, repeat.

Model calls run on a thread pool (up to `llm_concurrency` in flight) while the evaluator
works on the previous batch in its own thread, so neither the GPU nor the model waits for
the other. Candidates are handed to `on_candidate` (the run store) before evaluation and
again after, so a crash loses only what is in flight; a resumed run (`existing`) first
evaluates stored candidates that never got a result, then restores the strategy.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterable

from kernelsmith.languages import detect
from kernelsmith.llm.types import LLM, Completion, LLMError
from kernelsmith.search import stops
from kernelsmith.search.base import Budget, Proposal, SearchStats, Strategy, best_verified, finished
from kernelsmith.search.stops import StopReason
from kernelsmith.search.types import Candidate, Evaluate
from kernelsmith.task import Task

log = logging.getLogger(__name__)


@dataclass
class SearchOutcome:
    best: Candidate | None  # CORRECT with the highest speedup, or None
    candidates: list[Candidate]  # restored and new, in the order they were created
    stop_reason: StopReason  # a str: the sentence; .kind says which
    stats: SearchStats = field(default_factory=SearchStats)  # tokens, cost, llm calls, seconds ...

    @property
    def speedup(self) -> float | None:
        return self.best.result.speedup if self.best else None


def run_search(task: Task, strategy: Strategy, llm: LLM, evaluate: Evaluate, budget: Budget | None = None,
               on_candidate: Callable[[Candidate], None] | None = None,
               on_event: Callable[[str, dict], None] | None = None,
               existing: Iterable[Candidate] = (), llm_concurrency: int = 4,
               max_batch: int = 16, overlap: bool = True) -> SearchOutcome:
    """Search until the budget, the strategy's schedule, a model failure or Ctrl-C stops it.

    on_candidate(c): called when a candidate is created (before evaluation) and again once
    it has its result (format errors: once); it may set c.id (else the loop numbers them).
    on_event(kind, info): progress ("start", "propose", "answered", "candidate", "best", "stop").
    existing: the stored candidates of the run being resumed.
    llm_concurrency: model requests in flight at once. max_batch: candidates per evaluator call.
    overlap=False: strictly in rounds (propose, answer all, evaluate, observe), so the order
    of everything is reproducible; True keeps the model writing while the GPU evaluates.
    When a budget runs out, no new requests are made; those in flight are still finished.
    """
    return _Loop(task, strategy, llm, evaluate, budget or Budget(), on_candidate, on_event,
                 llm_concurrency, max_batch, overlap).run(list(existing))


class _Loop:
    def __init__(self, task, strategy, llm, evaluate, budget, on_candidate, on_event, concurrency, max_batch,
                 overlap):
        self.task, self.strategy, self.llm, self.evaluator, self.budget = task, strategy, llm, evaluate, budget
        self._on_candidate, self._on_event = on_candidate, on_event
        self.concurrency, self.max_batch, self.overlap = max(1, concurrency), max(1, max_batch), overlap
        self.stats = SearchStats()
        self.all: list[Candidate] = []
        self.ids: set[str] = set()
        self.groups: dict[int, list] = {}  # proposal number -> [candidates, still to evaluate]
        self.group_of: dict[int, int] = {}  # id(candidate) -> proposal number
        self.ready: list[Candidate] = []  # extracted, waiting for the evaluator
        self.llm_futs: dict[Future, tuple[int, Proposal]] = {}
        self.eval_fut: Future | None = None
        self.batch: list[Candidate] = []
        self.sent = 0
        self.pending_samples = 0  # asked of the model, not yet finished
        self.prefetched: set[str] = set()  # code handed to the evaluator's compile pool early

    def run(self, existing: list[Candidate]) -> SearchOutcome:
        t0 = time.monotonic()
        llm_pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ks-llm")
        eval_pool = ThreadPoolExecutor(1, thread_name_prefix="ks-eval")
        reason = None
        try:
            reason = self._resume(existing)
            self.event("start", strategy=self.strategy.name, restored=len(existing))
            stopping = reason
            while True:
                self.stats.seconds = time.monotonic() - t0
                if stopping is None:
                    stopping = self.budget.exhausted(self.stats) or (
                        stops.FINISHED if self.strategy.done() else None)
                    if stopping is None and (self.overlap or not (self.groups or self.llm_futs)):
                        self._send(llm_pool)
                if self.eval_fut is None and self.ready and (self.overlap or not self.llm_futs):
                    self.batch, self.ready = self.ready[:self.max_batch], self.ready[self.max_batch:]
                    items = [(self.task, c.code) for c in self.batch]
                    self.eval_fut = eval_pool.submit(self.evaluator.evaluate_many, items)
                if self.eval_fut is not None and self.ready:
                    self._prefetch()  # the next batch builds while the GPU times this one
                if not self.llm_futs and self.eval_fut is None:
                    if stopping is None:  # nothing in flight and nothing proposed: it cannot go on
                        stopping = stops.NOTHING_MORE
                    break
                timeout = None
                if self.budget.max_seconds is not None and stopping is None:
                    timeout = max(0.05, self.budget.max_seconds - (time.monotonic() - t0))
                done, _ = wait([*self.llm_futs, *([self.eval_fut] if self.eval_fut else [])], timeout=timeout,
                               return_when=FIRST_COMPLETED if self.overlap else ALL_COMPLETED)
                for fut in sorted(done, key=lambda f: -1 if f is self.eval_fut else self.llm_futs[f][0]):
                    if fut is self.eval_fut:
                        err = self._evaluated(fut)
                    else:
                        err = self._answered(fut)
                    if err and not reason:
                        reason = stopping = err
            reason = reason or stopping
        except KeyboardInterrupt:
            reason = stops.INTERRUPTED
            for fut in self.llm_futs:
                fut.cancel()
        finally:
            llm_pool.shutdown(wait=False, cancel_futures=True)
            eval_pool.shutdown(wait=False, cancel_futures=True)
        self.stats.seconds = time.monotonic() - t0
        reason = stops.of(reason) or StopReason(stops.StopKind.FINISHED, "stopped")
        out = SearchOutcome(best_verified(self.all), self.all, reason, self.stats)
        self.event("stop", reason=out.stop_reason, best=out.best.id if out.best else None)
        return out

    # -- steps ---------------------------------------------------------------------------
    def _prefetch(self) -> None:
        """Hand candidates waiting for the evaluator to its compile pool now (an evaluator
        that has none, e.g. a pool over several GPUs, builds them when their batch comes)."""
        prefetch = getattr(self.evaluator, "prefetch", None)
        todo = [c for c in self.ready if c.code not in self.prefetched]
        if prefetch is None or not todo:
            return
        self.prefetched.update(c.code for c in todo)
        try:
            prefetch([(self.task, c.code) for c in todo])
        except Exception:  # noqa: BLE001 - an early build is an optimisation: the batch builds anyway
            log.debug("prefetching builds failed", exc_info=True)

    def _resume(self, existing: list[Candidate]) -> StopReason | None:
        """Count stored candidates, evaluate the ones a crash left without a result, and
        rebuild the strategy from all of them."""
        self.all.extend(existing)
        self.ids.update(c.id for c in existing if c.id)
        todo = [c for c in existing if not finished(c)]
        if todo:
            try:
                results = self.evaluator.evaluate_many([(self.task, c.code) for c in todo])
            except Exception as exc:  # noqa: BLE001 - the evaluator promised values; report, don't crash
                log.exception("evaluating stored candidates failed")
                return stops.evaluator_failed(exc)
            for c, r in zip(todo, results):
                c.result = r
                self.persist(c)
        for c in existing:
            if finished(c):
                self.stats.record(c)
        self._count_calls((c.strategy_info.get("call"), c.completion) for c in existing)
        calls = [c.strategy_info.get("call") for c in existing]
        self.sent = max([n for n in calls if isinstance(n, int)], default=-1) + 1  # call numbers go on
        self.strategy.restore([c for c in existing if finished(c)])
        return _invalid_task([c.result for c in existing if c.result is not None])

    def _count_calls(self, calls: Iterable[tuple[int | None, Completion | None]]) -> None:
        """Tokens and cost per model call: the samples of one call share its usage."""
        seen = set()
        for num, comp in calls:
            if comp is None:
                continue
            key = num if num is not None else (comp.call_id or id(comp))
            if key in seen:
                continue
            seen.add(key)
            self.stats.llm_calls += 1
            self.stats.tokens += comp.usage.prompt_tokens + comp.usage.completion_tokens
            self.stats.cost_usd += comp.cost_usd

    def _send(self, pool: ThreadPoolExecutor) -> None:
        free = self.concurrency - len(self.llm_futs)
        left = self.budget.candidates_left(self.stats)
        if left is not None:
            left -= self.pending_samples
            free = min(free, left)
        if free <= 0:
            return
        for p in self.strategy.propose(free)[:free]:
            if left is not None:
                p.n = max(1, min(p.n, left))
                left -= p.n
            sampling = p.sampling or self.strategy.ctx.sampling
            fut = pool.submit(self.llm.complete, p.messages, p.n, sampling)
            self.llm_futs[fut] = (self.sent, p)
            self.pending_samples += p.n
            self.event("propose", proposal=self.sent, n=p.n, mode=p.mode, info=dict(p.strategy_info))
            self.sent += 1

    def _answered(self, fut: Future) -> StopReason | None:
        num, p = self.llm_futs.pop(fut)
        try:
            comps = fut.result()
        except LLMError as exc:
            self.pending_samples -= p.n
            return stops.llm_failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - a client bug must not lose the run
            self.pending_samples -= p.n
            log.exception("model call failed")
            return stops.llm_failed(f"{type(exc).__name__}: {exc}")
        self._count_calls([(num, comps[0])] if comps else [])
        comps = comps or [Completion(text="", model=getattr(self.llm, "name", ""))]  # so the strategy hears back
        self.pending_samples -= p.n - len(comps)
        cands = []
        for i, comp in enumerate(comps):
            code, err = _extract(comp.text, p)
            info = dict(p.strategy_info, mode=p.mode, call=num, sample=i)  # call: the model call's number
            if code:  # the language it is written in, by its imports (kernelsmith.languages.detect)
                info["language"] = detect(code) or "unknown"
            c = Candidate(code=code or "", parents=list(p.parents), strategy_info=info, completion=comp,
                          prompt=p.messages, format_error="" if code else (err or "no code in the reply"))
            self.persist(c)
            self.all.append(c)
            self.group_of[id(c)] = num
            cands.append(c)
        good = [c for c in cands if not c.format_error]
        self.groups[num] = [cands, len(good)]
        self.ready.extend(good)
        self.event("answered", proposal=num, samples=len(cands), format_errors=len(cands) - len(good))
        self._finish_group(num)
        return None

    def _evaluated(self, fut: Future) -> StopReason | None:
        batch, self.batch, self.eval_fut = self.batch, [], None
        try:
            results = list(fut.result())
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} candidates")
        except Exception as exc:  # noqa: BLE001
            log.exception("evaluation failed")
            self.pending_samples -= len(batch)
            return stops.evaluator_failed(exc)
        for c, r in zip(batch, results):
            c.result = r
            self.persist(c)
            self.groups[self.group_of[id(c)]][1] -= 1
        for num in dict.fromkeys(self.group_of[id(c)] for c in batch):
            self._finish_group(num)
        return _invalid_task(results)

    def _finish_group(self, num: int) -> None:
        """Once every sample of a proposal is finished, the strategy sees them together."""
        cands, waiting = self.groups[num]
        if waiting:
            return
        del self.groups[num]
        self.pending_samples -= len(cands)
        for c in cands:
            before = self.stats.best_speedup
            self.stats.record(c)
            if self.stats.best_speedup != before:  # any new best (patience wants > 1%)
                self.event("best", id=c.id, speedup=c.result.speedup)
            self.event("candidate", id=c.id, verdict=c.result.verdict.value if c.result else "format_error",
                       speedup=c.result.speedup if c.result else None, info=c.strategy_info)
        self.strategy.observe(cands)

    # -- plumbing --------------------------------------------------------------------------
    def persist(self, c: Candidate) -> None:
        if self._on_candidate:
            self._on_candidate(c)
        if not c.id:
            n = len(self.ids)
            while f"c{n:04d}" in self.ids:
                n += 1
            c.id = f"c{n:04d}"
        self.ids.add(c.id)

    def event(self, kind: str, **info) -> None:
        if self._on_event:
            try:
                self._on_event(kind, info)
            except Exception:  # noqa: BLE001 - a progress display must not stop a search
                log.exception("on_event(%s) failed", kind)


def _extract(text: str, p: Proposal) -> tuple[str | None, str]:
    """The candidate file in a reply: a whole file, or the parent with the reply's edits."""
    from kernelsmith.llm.extract import apply_diff, extract_code

    try:
        code, err = apply_diff(p.parent_code, text) if p.mode == "diff" else extract_code(text)
    except Exception as exc:  # noqa: BLE001 - an odd reply is a format error, never a crash
        log.exception("extracting code from a reply failed")
        return None, f"the reply could not be read ({type(exc).__name__}); reply with one ```python block"
    return code, err or ""


def _invalid_task(results) -> StopReason | None:
    """A broken reference (INVALID_TASK) makes every candidate unverifiable: stop spending."""
    from kernelsmith.results import Verdict

    for r in results:
        if getattr(r, "verdict", None) is Verdict.INVALID_TASK:
            return stops.invalid_task(r.message or "the reference failed to run")
    return None
