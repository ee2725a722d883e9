"""CLI commands of the search side: optimize and runs (list, show, export-best)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True)
runs_app = typer.Typer(no_args_is_help=True, help="Inspect what runs.db recorded.")


def register(app: typer.Typer) -> None:
    app.command()(optimize)
    app.add_typer(runs_app, name="runs")


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _store(db: str | None):
    from sqlalchemy.exc import SQLAlchemyError

    from kernelsmith.store.runs import RunStore

    try:
        return RunStore(db)
    except (SQLAlchemyError, OSError, ValueError) as exc:
        _fail(f"cannot open the run database {db or '(default runs.db)'}: {str(exc).splitlines()[0]}")


def _options(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        if "=" not in p:
            _fail(f"--option takes KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class _OneActor:
    """The single GPU evaluator of `optimize --executor ray`: one actor, closed with its pool."""

    def __init__(self, pool):
        self.pool, self.ev = pool, pool.evaluators[0]

    def __enter__(self):
        return self.ev

    def __exit__(self, *exc) -> None:
        self.pool.close()


def _evaluator(cfg, executor: str, address: str | None):
    from kernelsmith.evaluate.evaluator import Evaluator

    if executor == "local":
        return Evaluator(cfg)
    from kernelsmith.evaluate.ray_pool import make_ray_pool, ray_available

    ok, why = ray_available()
    if not ok:
        _fail(why)
    return _OneActor(make_ray_pool(cfg, address=address, num_actors=1))


def optimize(
    task: Optional[Path] = typer.Argument(None, help="KernelBench-format task file (omit with --resume)"),
    model: Optional[str] = typer.Option(None, help="model name, or replay:FILE to replay a recorded session"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (vLLM, SGLang, Ollama, ...)"),
    strategy: str = typer.Option("refine", help="refine | contrastive | evolve | best-of-n"),
    budget: int = typer.Option(16, min=1, help="number of candidates"),
    max_tokens: Optional[int] = typer.Option(None, help="token budget"),
    max_cost: Optional[float] = typer.Option(None, help="money budget in USD"),
    max_minutes: Optional[float] = typer.Option(None, help="wall-time budget"),
    patience: Optional[int] = typer.Option(None, help="stop after N candidates without a >1% improvement"),
    option: List[str] = typer.Option([], "--option", "-o", help="strategy option KEY=VALUE (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="where to write the best kernel (default TASK_kernelsmith.py)"),
    resume: Optional[str] = typer.Option(None, help="continue the run with this id"),
    db: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the run database (default sqlite runs.db)"),
    record: Optional[Path] = typer.Option(None, help="also record every model call to this JSONL (for replay:)"),
    sandbox: str = typer.Option("auto", help="auto | process | docker"),
    executor: str = typer.Option("local", help="local | ray (the GPU evaluator is a Ray actor on a cluster)"),
    profile: bool = typer.Option(False, "--profile", help="Nsight Compute summary of each new best, fed to the model"),
    sanitize: bool = typer.Option(True, "--sanitize/--no-sanitize",
                                  help="compute-sanitizer (memcheck, racecheck) on each new best; a finding disqualifies it"),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm",
                                 help="evaluate each new best a second time; keep the lower speedup"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray)"),
    gpu: int = typer.Option(0, min=0),
    seed: int = typer.Option(0),
) -> None:
    """Search for a faster verified kernel for TASK with an LLM; writes the best one."""
    from sqlalchemy.exc import SQLAlchemyError

    from kernelsmith.agent import (
        OptimizeRequest, optimize as run_optimize, request_from_run, resumable, write_best,
    )
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import NoGPU
    from kernelsmith.live import SearchView
    from kernelsmith.llm.client import make_model
    from kernelsmith.llm.types import LLMError
    from kernelsmith.search.base import Budget
    from kernelsmith.task import Task, TaskError

    store = _store(db)
    if resume:
        try:
            req = request_from_run(store.get_run(resume))
        except (KeyError, LookupError, ValueError) as exc:
            _fail(f"no run {resume!r} to resume: {exc}")
        model = model or store.get_run(resume).model
    else:
        if task is None:
            _fail("give a TASK file, or --resume RUN_ID")
        req = OptimizeRequest(str(task), model or "", strategy, Budget(
            max_candidates=budget, max_tokens=max_tokens, max_cost_usd=max_cost,
            max_seconds=max_minutes * 60 if max_minutes else None, patience=patience),
            strategy_options=_options(option), base_url=base_url, seed=seed)
    req.profile, req.sanitize, req.confirm = profile, sanitize, confirm  # this invocation's choice, resumed or not
    try:
        Task.load(req.task_path)
        llm = make_model(model or "", base_url=base_url or req.base_url, record=str(record) if record else None)
    except (TaskError, LLMError, ValueError) as exc:
        _fail(str(exc))
    console = Console()
    views: list = []
    started: list[str] = []  # the run's id, once it exists

    def make_view(run_id, recorder):
        started.append(run_id)
        v = SearchView(run_id, llm.name, req.strategy, console, recorder.spend, replay=llm.name.startswith("replay:"))
        v.__enter__()
        views.append(v)
        return v

    cfg = EvalConfig.from_env(sandbox=sandbox, gpu=gpu)
    if executor not in ("local", "ray"):
        _fail(f"--executor is local or ray, not {executor!r}")
    try:
        with _evaluator(cfg, executor, address) as ev:
            gpu_facts = ev.probe()
            run_id, outcome = run_optimize(req, llm, ev, store, gpu_facts, run_id=resume, make_view=make_view)
    except NoGPU as exc:
        _fail(f"{exc}; `kernelsmith optimize` evaluates on a CUDA GPU")
    except KeyboardInterrupt:
        err.print("interrupted: everything evaluated so far is in runs.db; continue with --resume")
        raise typer.Exit(130)
    except SQLAlchemyError as exc:  # e.g. the disk filled up: what was committed before is intact
        rid = started[0] if started else resume
        _fail(f"the run database failed mid-run ({str(exc.orig if getattr(exc, 'orig', None) else exc).splitlines()[0]}"
              f"; is the disk full?): everything committed before is in {db or 'runs.db'}"
              + (f"; free space, then continue with --resume {rid}" if rid else ""))
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(str(exc))
    finally:
        for v in views:
            v.__exit__(None, None, None)
    broken = [c.result.message for c in outcome.candidates
              if c.result is not None and c.result.verdict.value == "invalid_task"][:1]
    if broken:  # no kernel can be verified against a reference that does not run
        store.set_run_status(run_id, "failed", notes=f"invalid task: {broken[0]}")
        _fail(f"invalid task: the reference in {req.task_path} itself fails ({broken[0] or 'no detail'}); "
              "fix the task file (Model, get_inputs, get_init_inputs), then start a new run")
    target = out or Path(Path(req.task_path).stem + "_kernelsmith.py")
    try:
        written = write_best(store, run_id, target)
    except SQLAlchemyError as exc:
        _fail(f"the run database failed: {str(exc).splitlines()[0]}")
    console.print(f"run {run_id}: {outcome.stop_reason}")
    if resumable(outcome.stop_reason):  # the endpoint or the evaluator failed: not done, resumable
        if written is not None:
            console.print(f"best verified kernel so far: [bold]{written}[/] ({outcome.speedup:.3f}x over eager)")
        _fail(f"the search stopped early: {outcome.stop_reason}\neverything evaluated so far is in runs.db; "
              f"continue with --resume {run_id}")
    if written is None:
        console.print("[yellow]no candidate was verified correct; nothing written[/]")
        raise typer.Exit(1)
    console.print(f"best verified kernel: [bold]{written}[/] ({outcome.speedup:.3f}x over eager); report "
                  f"{written.with_suffix('.md')}")


@runs_app.command("list")
def runs_list(db: Optional[str] = typer.Option(None), limit: int = typer.Option(30, min=1),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Recent runs."""
    runs = _store(db).list_runs(limit=limit)
    if as_json:
        sys.stdout.write(json.dumps([_run_dict(r) for r in runs], indent=2, default=str) + "\n")
        return
    t = Table("run", "kind", "status", "model", "strategy", "best", "created")
    for r in runs:
        model = r.model + (" [replay]" if r.label == "replay" else "")
        t.add_row(r.id, r.kind, r.status, model, r.strategy, f"{r.best_speedup:.3f}x" if r.best_speedup else "-",
                  str(r.created_at)[:19])
    Console().print(t)


def _run_dict(r) -> dict:
    return {k: getattr(r, k) for k in ("id", "kind", "status", "model", "strategy", "label", "best_candidate_id",
                                       "best_speedup", "created_at", "updated_at", "config")}


@runs_app.command("show")
def runs_show(run_id: str, db: Optional[str] = typer.Option(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """One run: configuration, spend, verdicts, best kernel and its lineage."""
    from kernelsmith.agent import report_markdown

    store = _store(db)
    try:
        info = store.get_run(run_id)
    except (KeyError, LookupError, ValueError) as exc:
        _fail(f"no run {run_id!r}: {exc}")
    if as_json:
        best = store.best(run_id)
        data = {"run": _run_dict(info), "totals": store.totals(run_id),
                "best": {"id": best.id, "result": best.result.to_dict() if best.result else None,
                         "lineage": [c.id for c in store.lineage(best.id)]} if best else None}
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    Console().print(report_markdown(store, run_id))


@runs_app.command("export-best")
def runs_export_best(run_id: str, out: Optional[Path] = typer.Option(None), db: Optional[str] = typer.Option(None)) -> None:
    """Write the run's best verified kernel (and its report) again."""
    from kernelsmith.agent import write_best

    store = _store(db)
    try:
        store.get_run(run_id)
    except (KeyError, LookupError, ValueError) as exc:
        _fail(f"no run {run_id!r}: {exc}")
    target = out or Path(f"{run_id}_best.py")
    if write_best(store, run_id, target) is None:
        _fail("this run has no candidate verified correct", code=1)
    Console().print(f"wrote {target} and {target.with_suffix('.md')}")
