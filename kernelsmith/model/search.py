"""The normal pipeline for generated tasks: one evaluator, one run store and one model for
many tasks, each searched with `kernelsmith.agent.optimize` exactly as `kernelsmith optimize`
does (same strategies, budgets, checks of a new best, runs.db records, written best kernel
and Markdown report). Nothing here searches on its own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kernelsmith.model.errors import ModelError
from kernelsmith.search.base import Budget


@dataclass
class SearchSettings:
    model: str = ""  # an LLM spec as for `optimize --model` (replay:FILE, scripted:FILE, a name)
    base_url: str | None = None
    strategy: str = "refine"
    budget: Budget = field(default_factory=lambda: Budget(max_candidates=16))
    options: dict = field(default_factory=dict)
    language: str = "cuda"
    seed: int = 0
    sanitize: bool = True
    confirm: bool = True
    profile: bool = False
    db: str | None = None  # runs.db URL or path [default: KERNELSMITH_DB, else ./runs.db]
    record: str | None = None
    llm_concurrency: int = 4


@dataclass
class TaskResult:
    task_path: Path
    run_id: str = ""
    stop_reason: str = ""
    speedup: float | None = None  # of the best verified candidate, over eager
    kernel_path: Path | None = None  # the best verified kernel, written (with a .md report)
    candidates: int = 0
    verdicts: dict = field(default_factory=dict)
    skipped: str = ""  # why no search ran

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


class Searcher:
    """`with Searcher(settings) as s: s.run(task, out)` for as many tasks as needed.

    evaluator/store/llm may be given (tests, notebooks holding their own); otherwise the
    GPU evaluator of `optimize` (or, with dry_run, its static-screen-and-compile stand-in),
    runs.db, and make_model(settings.model)."""

    def __init__(self, settings: SearchSettings, evaluator=None, store=None, llm=None, dry_run: bool = False,
                 gpu: int = 0, sandbox: str = "auto", on_event: Callable[[str], None] | None = None):
        self.settings, self.dry_run = settings, dry_run
        self._given_ev, self.store, self._llm = evaluator, store, llm
        self.gpu, self.sandbox = gpu, sandbox
        self.note = on_event or (lambda msg: None)
        self.ev = None
        self._ctx = None
        self.gpu_facts: dict = {}

    def __enter__(self) -> "Searcher":
        from kernelsmith.config import EvalConfig

        ev = self._given_ev
        if ev is None:
            cfg = EvalConfig.from_env(sandbox=self.sandbox, gpu=self.gpu)
            if self.dry_run:
                from kernelsmith.cli.dryrun import DryRunEvaluator

                ev = DryRunEvaluator(cfg)
            else:
                from kernelsmith.evaluate.evaluator import Evaluator

                ev = Evaluator(cfg)
            self._ctx = ev
        self.ev = ev.__enter__() if hasattr(ev, "__enter__") else ev
        try:
            from kernelsmith.evaluate.evaluator import NoGPU

            self.gpu_facts = self.ev.probe() if hasattr(self.ev, "probe") else {}
        except NoGPU as exc:
            self.close()
            raise ModelError(f"{exc}: optimizing needs a CUDA GPU (dry_run=True / --dry-run screens and compiles "
                             "without one)") from None
        if self.store is None:
            from kernelsmith.store.runs import RunStore

            self.store = RunStore("sqlite://") if self.dry_run else RunStore(self.settings.db)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    @property
    def task_dirs(self) -> list[Path]:
        """Where the evaluator copies tasks (the weights file must sit beside them)."""
        root = getattr(self.ev, "root", None) or getattr(getattr(self.ev, "ev", None), "root", None)
        return [Path(root) / "tasks"] if root else []

    def llm(self):
        if self._llm is None:
            from kernelsmith.llm.client import make_model

            self._llm = make_model(self.settings.model, base_url=self.settings.base_url,
                                   record=self.settings.record)
        return self._llm

    def run(self, task_path: Path, out: Path, llm=None, max_candidates: int | None = None) -> TaskResult:
        """Search one task with the normal pipeline; write its best verified kernel to `out`."""
        from kernelsmith.agent import OptimizeRequest, optimize, write_best

        s = self.settings
        budget = s.budget if max_candidates is None else dataclasses.replace(
            s.budget, max_candidates=min(max_candidates, s.budget.max_candidates or max_candidates))
        model = llm or self.llm()
        req = OptimizeRequest(str(task_path), model.name, s.strategy, budget, strategy_options=dict(s.options),
                              base_url=s.base_url, seed=s.seed, language=s.language,
                              llm_concurrency=s.llm_concurrency)
        req.sanitize, req.confirm, req.profile = s.sanitize, s.confirm, s.profile
        if self.dry_run:
            req.sanitize = req.confirm = req.profile = False
        run_id, outcome = optimize(req, model, self.ev, self.store, self.gpu_facts)
        res = TaskResult(Path(task_path), run_id, outcome.stop_reason, outcome.speedup,
                         candidates=len(outcome.candidates))
        for c in outcome.candidates:
            v = c.result.verdict.value if c.result is not None else ("format_error" if c.format_error else "pending")
            res.verdicts[v] = res.verdicts.get(v, 0) + 1
        if broken := [c.result.message for c in outcome.candidates
                      if c.result is not None and c.result.verdict.value == "invalid_task"][:1]:
            raise ModelError(f"the generated task {task_path} does not run as a reference ({broken[0]}); "
                             "this is a kernelsmith bug, please report it with the task file")
        if not self.dry_run and outcome.best is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            res.kernel_path = write_best(self.store, run_id, Path(out))
        return res
