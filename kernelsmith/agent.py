"""`kernelsmith optimize`: one search over one task, recorded in runs.db.

Wires the pieces together and nothing more: the run store (every prompt, completion,
candidate and evaluation, committed as it happens), the model (live endpoint or a
replay), a strategy, the evaluator, and a progress callback for the CLI's live view.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kernelsmith.llm.types import LLM, Completion, Sampling
from kernelsmith.results import ErrorClass, EvalResult, Verdict
from kernelsmith.search import stops
from kernelsmith.search.base import Budget, SearchContext, make_strategy
from kernelsmith.search.loop import SearchOutcome, run_search
from kernelsmith.search.types import Candidate, Evaluate
from kernelsmith.store.convert import gpu_seconds
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task

log = logging.getLogger(__name__)


@dataclass
class OptimizeRequest:
    task_path: str
    model: str
    strategy: str = "refine"
    budget: Budget = field(default_factory=lambda: Budget(max_candidates=16))
    strategy_options: dict = field(default_factory=dict)
    base_url: str | None = None
    llm_concurrency: int = 4
    seed: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    # the kernel language the prompts ask for (kernelsmith.languages), or "any"; kept in the
    # run's config, so a resumed run (and one made before this field: cuda) asks for the same
    language: str = "cuda"
    # On each candidate that would become the task's best (see ToolingEvaluator):
    # compute-sanitizer, a second independent evaluation, an Nsight Compute summary.
    sanitize: bool = True
    confirm: bool = True
    profile: bool = False


class StoreRecorder:
    """Wraps a model so every call (and every failed call) lands in runs.db at once."""

    def __init__(self, inner: LLM, store: RunStore, run_id: str):
        self.inner, self.store, self.run_id = inner, store, run_id
        self.name = inner.name
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self.tokens, self.cost_usd, self.calls = 0, 0.0, 0

    def complete(self, messages, n: int = 1, sampling: Sampling | None = None) -> list[Completion]:
        try:
            comps = self.inner.complete(messages, n=n, sampling=sampling)
        except Exception as exc:
            self.store.add_llm_call(self.run_id, self.name, messages, [], error=str(exc)[:2000])
            raise
        call_id = self.store.add_llm_call(self.run_id, self.name, messages, comps)
        with self._lock:
            self.calls += 1
            if comps:  # usage and cost belong to the call, shared by its n choices
                u = comps[0].usage
                self.tokens += u.prompt_tokens + u.completion_tokens
                self.cost_usd += comps[0].cost_usd
            for c in comps:
                if c.call_id:
                    self._ids[c.call_id] = call_id
        return comps

    def spend(self) -> tuple[int, float, int]:
        with self._lock:
            return self.tokens, self.cost_usd, self.calls

    def call_row(self, comp: Completion | None) -> int | None:
        with self._lock:
            return self._ids.get(comp.call_id) if comp and comp.call_id else None


class ToolingEvaluator:
    """Checks every candidate that would become the run's best before it is believed:
    - sanitize: compute-sanitizer (memcheck, racecheck); a finding makes it INCORRECT (a
      kernel with out-of-bounds accesses or races is not a kernel to keep);
    - confirm: a second, independent evaluation (fresh process, fresh inputs); failing it
      makes the kernel INCORRECT; passing it, the lower of the two speedups is kept, with a
      CI covering both (the best of many noisy measurements is biased upward);
    - profile: an Nsight Compute summary for the next prompt."""

    def __init__(self, inner, profile: bool = False, sanitize: bool = False, best: float = 0.0,
                 confirm: bool = False):
        self.inner, self.do_profile, self.do_sanitize, self.do_confirm = inner, profile, sanitize, confirm
        self.best = best  # a resumed search starts from its stored best

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _tool(self, name: str, task, code) -> str | None:
        run = getattr(self.inner, name, None)
        if run is None:  # an evaluator with no tool jobs (test fakes, custom executors)
            return f"not run: this executor has no {name} job"
        return run(task, code)

    def evaluate_many(self, items, on_result=None):
        items = list(items)
        results = self.inner.evaluate_many(items, on_result=on_result)
        for (task, code), r in zip(items, results):
            if not (r.correct and r.speedup and r.speedup > self.best):
                continue
            self._verify(task, code, r)
            # The checks may have disqualified the kernel or lowered its speedup: the
            # evaluator's cache takes the final verdict, the same one the caller records.
            settle = getattr(self.inner, "settle", None)
            if settle is not None and (self.do_sanitize or self.do_confirm):
                settle(task, code, r)
        return results

    def _verify(self, task, code, r: EvalResult) -> None:
        """The checks of a would-be best, in order; each may disqualify it (in place)."""
        if self.do_sanitize:
            r.sanitizer = self._tool("sanitize", task, code)
            if re.search(r"\b(memcheck|racecheck): [1-9]\d* error", r.sanitizer):
                r.verdict, r.error = Verdict.INCORRECT, ErrorClass.SANITIZER
                r.message = f"compute-sanitizer: {r.sanitizer}"
                return
        if self.do_confirm and not self._confirm(task, code, r):
            return
        if r.speedup > self.best:  # confirming can lower it below the best
            self.best = r.speedup
            if self.do_profile:
                r.profile = self._tool("profile", task, code)

    def _confirm(self, task, code, r: EvalResult) -> bool:
        """Evaluate again; False when the kernel failed the second evaluation."""
        retime = getattr(self.inner, "retime", None)
        again = retime(task, code) if retime is not None else None
        if again is None or (not again.correct and again.error is ErrorClass.SANDBOX):
            r.warnings.append("speedup not confirmed: a second evaluation could not run"
                              + (f" ({again.message[:200]})" if again is not None else ""))
            return True
        # the second evaluation's GPU time counts toward the run's (its compile was a cache hit)
        r.wall["confirm"] = gpu_seconds(again.wall)
        if not again.correct:
            r.verdict, r.error = again.verdict, again.error
            r.message = (f"passed once, then failed a second, independent evaluation: {again.message}"[:2000])
            return False
        first, second = r.timing, again.timing
        keep, other = (first, second) if first.speedup_eager <= second.speedup_eager else (second, first)
        if keep.speedup_eager_ci and other.speedup_eager_ci:
            keep.speedup_eager_ci = (min(keep.speedup_eager_ci[0], other.speedup_eager_ci[0]),
                                     max(keep.speedup_eager_ci[1], other.speedup_eager_ci[1]))
        keep.other_session_speedup, keep.other_session_ci = other.speedup_eager, other.speedup_eager_ci
        r.timing = keep
        return True


def start_run(store: RunStore, req: OptimizeRequest, task: Task, model_name: str) -> str:
    store.upsert_task(task, origin=str(req.task_path))
    config = dataclasses.asdict(req)
    config["budget"] = dataclasses.asdict(req.budget)
    label = "replay" if model_name.startswith("replay:") else ""
    run_id = store.create_run("optimize", model_name, req.strategy, config, dataclasses.asdict(req.budget),
                              label=label)
    return run_id


def request_from_run(info) -> OptimizeRequest:
    """Rebuild the request of a stored run, for --resume."""
    cfg = dict(info.config)
    cfg["budget"] = Budget(**cfg.get("budget", {}))
    cfg["sampling"] = Sampling(**cfg.get("sampling", {}))
    known = {f.name for f in dataclasses.fields(OptimizeRequest)}
    return OptimizeRequest(**{k: v for k, v in cfg.items() if k in known})


def optimize(req: OptimizeRequest, llm: LLM, evaluator: Evaluate, store: RunStore, gpu: dict,
             run_id: str | None = None,
             make_view: Callable[[str, StoreRecorder], Callable[[str, dict], None]] | None = None,
             task: Task | None = None) -> tuple[str, SearchOutcome]:
    """Run (or resume, with run_id) one search; returns the run id and the outcome.
    make_view(run_id, recorder) may return an on_event callback (the CLI's live view).
    task: req.task_path already loaded (the CLI loads it to fail early): loaded once."""
    task = task if task is not None else Task.load(req.task_path)
    if run_id is None:
        run_id = start_run(store, req, task, llm.name)
    else:
        store.set_run_status(run_id, "running")
    recorder = StoreRecorder(llm, store, run_id)
    on_event = make_view(run_id, recorder) if make_view else None
    status, returned = "failed", False
    try:
        outcome = search_task(store, run_id, task, req, recorder, evaluator, gpu, on_event)
        # a lost endpoint or evaluator is not the end of the search: --resume continues it
        why = outcome.stop_reason
        status = "interrupted" if why.interrupted or why.resumable else "finished"
        returned = True
        return run_id, outcome
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        try:
            store.set_run_status(run_id, status)
        except Exception:  # noqa: BLE001 - e.g. the disk is full: keep the error that stopped the run
            if returned:
                raise
            log.warning("could not mark run %s %s: %s", run_id, status, str(sys.exc_info()[1]).splitlines()[0])


def resumable(stop_reason: str) -> bool:
    """The search stopped because the model endpoint or the evaluator failed, not because it
    was done: the run is left "interrupted" so that --resume continues it."""
    why = stops.of(stop_reason)
    return why is not None and why.resumable


def search_task(store: RunStore, run_id: str, task: Task, req: OptimizeRequest, recorder: StoreRecorder,
                evaluator: Evaluate, gpu: dict, on_event=None) -> SearchOutcome:
    """One task's search inside a run (optimize has one task, bench many): resumes from the
    task's stored candidates, records everything as it happens, marks the task done."""
    existing: list[Candidate] = store.candidates(run_id, task.hash)
    store.set_run_task(run_id, task.hash, "running")
    ctx = SearchContext(gpu=gpu, seed=req.seed, sampling=req.sampling, language=req.language)
    strategy = make_strategy(req.strategy, task, ctx, **req.strategy_options)
    if req.sanitize or req.profile or req.confirm:
        best = max((c.result.speedup or 0.0 for c in existing if c.result is not None and c.result.correct), default=0.0)
        evaluator = ToolingEvaluator(evaluator, profile=req.profile, sanitize=req.sanitize, best=best,
                                     confirm=req.confirm)

    def persist(c: Candidate) -> None:
        to_evaluate = c.result is None and not c.format_error
        if not c.id:
            store.add_candidate(run_id, task.hash, c, llm_call_id=recorder.call_row(c.completion),
                                evaluating=to_evaluate)
        elif to_evaluate:
            store.mark_evaluating(c.id)
        if c.result is not None:
            store.add_evaluation(c.id, c.result)

    outcome = run_search(task, strategy, recorder, evaluator, req.budget, on_candidate=persist,
                         on_event=on_event, existing=existing, llm_concurrency=req.llm_concurrency)
    if not outcome.stop_reason.interrupted:
        best = outcome.best
        store.set_run_task(run_id, task.hash, "done", best_candidate_id=best.id if best else None)
    return outcome


def write_best(store: RunStore, run_id: str, out: Path) -> Path | None:
    """Write the run's best verified kernel as a runnable KernelBench-style file plus a
    short Markdown report beside it; None when the run has no correct candidate."""
    best = store.best(run_id)
    if best is None or best.result is None:
        return None
    info = store.get_run(run_id)
    r = best.result
    t = r.timing
    header = [
        f'"""kernelsmith: best verified kernel of run {run_id} ({info.model}, strategy {info.strategy}).',
        "",
        f"Speedup over PyTorch eager {t.speedup_eager:.3f}x" + (
            f" (95% CI {t.speedup_eager_ci[0]:.3f}-{t.speedup_eager_ci[1]:.3f})" if t.speedup_eager_ci else "")
        + (f"; over torch.compile {t.speedup_compile:.3f}x" if t.speedup_compile else "")
        + f" on {r.system.gpu or 'unknown GPU'}.",
        f"Task hash {r.task_hash[:16]}; candidate {best.id}. Evaluate again with: kernelsmith eval TASK.py THIS_FILE.py",
        '"""',
        "",
    ]
    out.write_text("\n".join(header) + best.code)
    out.with_suffix(".md").write_text(report_markdown(store, run_id))
    return out


def report_markdown(store: RunStore, run_id: str) -> str:
    info = store.get_run(run_id)
    tot = store.totals(run_id)
    best = store.best(run_id)
    lines = [f"# kernelsmith run {run_id}", "",
             f"- model: {info.model}{' (REPLAY of a recorded session)' if info.label == 'replay' else ''}",
             f"- strategy: {info.strategy}; language: {(info.config or {}).get('language') or 'cuda'}; "
             f"status: {info.status}",
             f"- candidates: {tot['candidates']} ({', '.join(f'{k} {v}' for k, v in sorted(tot['by_verdict'].items()))})",
             f"- tokens: {tot['tokens']['prompt']} prompt ({tot['tokens']['cached']} cached), "
             f"{tot['tokens']['completion']} completion ({tot['tokens']['reasoning']} reasoning); "
             f"cost ${tot['cost_usd']:.4f}; {tot['llm_calls']} model calls; GPU {tot['gpu_seconds']:.0f} s", ""]
    if best is None or best.result is None or best.result.timing is None:
        lines.append("No candidate was verified correct.")
        return "\n".join(lines) + "\n"
    t = best.result.timing
    ci = f" (95% CI {t.speedup_eager_ci[0]:.3f}-{t.speedup_eager_ci[1]:.3f})" if t.speedup_eager_ci else ""
    lines += ["## Best verified kernel", "",
              f"- speedup over eager: **{t.speedup_eager:.3f}x**{ci}",
              f"- speedup over torch.compile: {t.speedup_compile:.3f}x" if t.speedup_compile else
              "- speedup over torch.compile: not measured",
              f"- candidate {t.candidate.median_ms:.4f} ms, eager {t.eager.median_ms:.4f} ms (medians)",
              f"- GPU: {best.result.system.gpu}, driver {best.result.system.driver}, torch {best.result.system.torch}", "",
              "## Lineage (newest first)", ""]
    chain = store.lineage(best.id)
    if not chain or chain[0].id != best.id:
        chain.insert(0, best)
    for c in chain:
        r = c.result
        sp = f"{r.speedup:.3f}x" if r is not None and r.speedup else "-"
        verdict = r.verdict.value if r is not None else (c.format_error and "format_error") or "pending"
        lines.append(f"- `{c.id}` {verdict} {sp} {c.strategy_info or ''}")
    return "\n".join(lines) + "\n"


def elapsed(t0: float) -> str:
    s = int(time.monotonic() - t0)
    return f"{s // 60}:{s % 60:02d}"
