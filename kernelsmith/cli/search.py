"""CLI commands of the search side: optimize and runs (list, show, export-best)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kernelsmith.cli.common import (
    BUDGET_HELP, CONTEXT, DB_HELP, LANGUAGE, MAX_COST, MAX_MINUTES, MAX_TOKENS, PATIENCE, SANDBOX_HELP, STRATEGY_HELP,
    budget, check_executor, check_language, check_sandbox, db_label, existing_store, memory_store, one_gpu, open_store,
    parse_options, resolve_language,
)
from kernelsmith.cli.errors import fail, note

runs_app = typer.Typer(no_args_is_help=True, context_settings=CONTEXT, rich_markup_mode=None, help="Inspect what runs.db recorded.")


def register(app: typer.Typer) -> None:
    app.command()(optimize)
    app.add_typer(runs_app, name="runs")


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
    from kernelsmith.evaluate.executors.ray import make_ray_pool, ray_available

    ok, why = ray_available()
    if not ok:
        fail(why)
    return _OneActor(make_ray_pool(cfg, address=address, num_actors=1))


def dry_run_table(records, title: str) -> Table:
    """One line per candidate: what the static screen and the compiler said."""
    from kernelsmith.cli.dryrun import verdict_label

    many = len({r.task for r in records}) > 1
    t = Table(title=title, title_justify="left", box=None, show_edge=False, pad_edge=False)
    t.add_column("#", justify="right", no_wrap=True)
    if many:
        t.add_column("task", no_wrap=True)
    t.add_column("result", no_wrap=True, min_width=17)
    t.add_column("backend", no_wrap=True, min_width=7)
    t.add_column("s", no_wrap=True, justify="right", min_width=4)
    t.add_column("message", no_wrap=True)
    for i, r in enumerate(records, 1):
        style = "green" if r.verdict == "runtime_error" else "red"
        first = (r.message or "").splitlines()[0] if r.message else ""
        first = first if len(first) <= 44 else first[:43] + "…"
        row = [str(i)] + ([r.task] if many else []) + [f"[{style}]{verdict_label(r.verdict)}[/]", r.backend,
                                                        f"{r.seconds:.2f}", escape(first)]
        t.add_row(*row)
    return t


def dry_run_summary(records) -> tuple[str, int]:
    """('3 candidates: compiled, not run 2, compile_error 1', number that compiled)."""
    from kernelsmith.cli.dryrun import verdict_label

    counts: dict[str, int] = {}
    for r in records:
        counts[verdict_label(r.verdict)] = counts.get(verdict_label(r.verdict), 0) + 1
    ok = sum(1 for r in records if r.verdict == "runtime_error")
    return (f"{len(records)} candidate(s): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))), ok


def optimize(
    task: Optional[Path] = typer.Argument(None, help="KernelBench-format task file (omit with --resume)"),
    model: Optional[str] = typer.Option(None, help="model name; replay:FILE replays a recorded session, "
                                                   "scripted:FILE answers with a JSON list of canned replies"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (vLLM, SGLang, Ollama, ...) "
                                                      "[default: KERNELSMITH_BASE_URL, OPENAI_BASE_URL, config.toml]"),
    strategy: str = typer.Option("refine", help=STRATEGY_HELP),
    language: Optional[str] = LANGUAGE,
    budget_n: int = typer.Option(16, "--budget", min=1, help=BUDGET_HELP),
    max_tokens: Optional[int] = MAX_TOKENS,
    max_cost: Optional[float] = MAX_COST,
    max_minutes: Optional[float] = MAX_MINUTES,
    patience: Optional[int] = PATIENCE,
    option: List[str] = typer.Option([], "--option", "-o", help="strategy option KEY=VALUE (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="where to write the best kernel [default: TASK_kernelsmith.py]"),
    resume: Optional[str] = typer.Option(None, help="continue the run with this id"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    record: Optional[Path] = typer.Option(None, help="also record every model call to this JSONL (for replay:)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="no GPU: static screen and compile every candidate, "
                                                          "time nothing, write nothing (an in-memory run database; "
                                                          "--record still records the model's answers)"),
    sandbox: str = typer.Option("auto", help=SANDBOX_HELP),
    executor: str = typer.Option("local", help="local | ray (the GPU evaluator is a Ray actor on a cluster)"),
    profile: bool = typer.Option(False, "--profile", help="Nsight Compute summary of each new best, fed to the model"),
    sanitize: bool = typer.Option(True, "--sanitize/--no-sanitize",
                                  help="compute-sanitizer (memcheck, racecheck) on each new best; a finding disqualifies it"),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm",
                                 help="evaluate each new best a second time; keep the lower speedup"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray)"),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="the GPU index to evaluate on [default: 0]"),
    old_gpu: Optional[int] = typer.Option(None, "--gpu", min=0, hidden=True, help="old name of --gpus"),
    seed: int = typer.Option(0, help="seed of the search (sampling order, inputs)"),
) -> None:
    """Search for a faster verified kernel for TASK with an LLM; writes the best one and a report."""
    from sqlalchemy.exc import SQLAlchemyError

    from kernelsmith.agent import (
        OptimizeRequest, optimize as run_optimize, request_from_run, resumable, write_best,
    )
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import NoGPU
    from kernelsmith.cli.live import SearchView
    from kernelsmith.llm.client import make_model
    from kernelsmith.llm.types import LLMError
    from kernelsmith.task import Task, TaskError

    # Every argument is checked before anything is opened or written (runs.db included).
    check_executor(executor)
    check_sandbox(sandbox)
    check_language(language)
    gpu = one_gpu(gpus, old_gpu)
    if dry_run and resume:
        fail("--dry-run starts a throwaway search; it cannot --resume a recorded run")
    if dry_run and executor != "local":
        fail("--dry-run compiles on this machine; leave out --executor ray")
    store = None
    if resume:
        store = existing_store(db)
        try:
            info = store.get_run(resume)
            req = request_from_run(info)
        except (KeyError, LookupError, ValueError) as exc:
            fail(f"no run {resume!r} to resume: {exc}")
        model = model or info.model
        req.language = resolve_language(language, req.language, resuming=True)
    else:
        if task is None:
            fail("give a TASK file, or --resume RUN_ID")
        req = OptimizeRequest(str(task), model or "", strategy,
                              budget(budget_n, max_tokens, max_cost, max_minutes, patience),
                              strategy_options=parse_options(option), base_url=base_url, seed=seed,
                              language=resolve_language(language, "", resuming=False))
    req.profile, req.sanitize, req.confirm = profile, sanitize, confirm  # this invocation's choice, resumed or not
    if dry_run:  # nothing is run, so nothing becomes a best to check
        req.profile = req.sanitize = req.confirm = False
    try:
        task = Task.load(req.task_path)  # loaded once: to fail early here, and for the run
        llm = make_model(model or "", base_url=base_url or req.base_url, record=str(record) if record else None)
    except (TaskError, LLMError, ValueError) as exc:
        fail(str(exc))
    console = Console()
    views: list = []
    started: list[str] = []  # the run's id, once it exists

    def make_view(run_id, recorder):
        started.append(run_id)
        shown = req.strategy + ("" if req.language == "cuda" else f", language {req.language}")
        v = SearchView(run_id, llm.name, shown, console, recorder.spend,
                       replay=llm.name.startswith("replay:"), dry_run=dry_run)
        v.__enter__()
        views.append(v)
        return v

    cfg = EvalConfig.from_env(sandbox=sandbox, gpu=gpu)
    dry = None
    try:
        if dry_run:
            from kernelsmith.cli.dryrun import DryRunEvaluator

            dry = DryRunEvaluator(cfg)
            evaluator = dry
        else:
            evaluator = _evaluator(cfg, executor, address)
        with evaluator as ev:
            gpu_facts = ev.probe()  # no GPU: NoGPU here, before runs.db exists
            if store is None:
                store = memory_store() if dry_run else open_store(db)
            run_id, outcome = run_optimize(req, llm, ev, store, gpu_facts, run_id=resume, make_view=make_view,
                                           task=task)
    except NoGPU as exc:
        fail(f"{exc}; `kernelsmith optimize` evaluates on a CUDA GPU (`--dry-run` screens and compiles without one)")
    except KeyboardInterrupt:
        for v in views:
            v.__exit__(None, None, None)
        views.clear()
        note("interrupted: " + ("a dry run keeps nothing" if dry_run else
                                f"everything evaluated so far is in runs.db; continue with --resume {started[0]}"
                                if started else "before the run started; nothing was recorded"))
        raise typer.Exit(130)
    except SQLAlchemyError as exc:  # e.g. the disk filled up: what was committed before is intact
        rid = started[0] if started else resume
        fail(f"the run database failed mid-run ({str(exc.orig if getattr(exc, 'orig', None) else exc).splitlines()[0]}"
             f"; is the disk full?): everything committed before is in {db_label(db) if db else 'runs.db'}"
             + (f"; free space, then continue with --resume {rid}" if rid else ""))
    except (RuntimeError, ValueError, OSError) as exc:
        fail(str(exc))
    finally:
        for v in views:
            v.__exit__(None, None, None)
    broken = [c.result.message for c in outcome.candidates
              if c.result is not None and c.result.verdict.value == "invalid_task"][:1]
    if broken:  # no kernel can be verified against a reference that does not run
        store.set_run_status(run_id, "failed", notes=f"invalid task: {broken[0]}")
        fail(f"invalid task: the reference in {req.task_path} itself fails ({broken[0] or 'no detail'}); "
             "fix the task file (Model, get_inputs, get_init_inputs), then start a new run")
    if dry is not None:
        summary, compiled = dry_run_summary(dry.records)
        if outcome.stop_reason.interrupted:
            note(f"interrupted after {summary}; a dry run keeps nothing")
            raise typer.Exit(130)
        console.print()
        console.print(dry_run_table(dry.records, f"dry run {run_id}: {outcome.stop_reason}"))
        console.print(f"dry run: {summary}; nothing was run or timed, nothing written", soft_wrap=True)
        raise typer.Exit(0 if compiled else 1)
    target = out or Path(Path(req.task_path).stem + "_kernelsmith.py")
    try:
        written = write_best(store, run_id, target)
    except SQLAlchemyError as exc:
        fail(f"the run database failed: {str(exc).splitlines()[0]}")
    console.print(f"run {run_id}: {outcome.stop_reason}", soft_wrap=True)
    if resumable(outcome.stop_reason):  # the endpoint or the evaluator failed: not done, resumable
        if written is not None:
            console.print(f"best verified kernel so far: [bold]{written}[/] ({outcome.speedup:.3f}x over eager)")
        fail(f"the search stopped early: {outcome.stop_reason}\neverything evaluated so far is in runs.db; "
             f"continue with --resume {run_id}")
    if written is None:
        console.print("[yellow]no candidate was verified correct; nothing written[/]")
        raise typer.Exit(1)
    console.print(f"best verified kernel: [bold]{written}[/] ({outcome.speedup:.3f}x over eager); report "
                  f"{written.with_suffix('.md')}", soft_wrap=True)


@runs_app.command("list")
def runs_list(db: Optional[str] = typer.Option(None, help=DB_HELP),
              limit: int = typer.Option(30, min=1, help="how many of the newest runs"),
              as_json: bool = typer.Option(False, "--json", help="print the runs as JSON on stdout")) -> None:
    """Recent runs."""
    runs = existing_store(db).list_runs(limit=limit)
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
def runs_show(run_id: str = typer.Argument(..., help="the run's id (or a unique prefix)"),
              db: Optional[str] = typer.Option(None, help=DB_HELP),
              as_json: bool = typer.Option(False, "--json", help="print the run as JSON on stdout")) -> None:
    """One run: configuration, spend, verdicts, best kernel and its lineage."""
    from kernelsmith.agent import report_markdown

    store = existing_store(db)
    try:
        info = store.get_run(run_id)
    except (KeyError, LookupError, ValueError) as exc:
        fail(f"no run {run_id!r}: {exc}")
    if as_json:
        best = store.best(run_id)
        data = {"run": _run_dict(info), "totals": store.totals(run_id),
                "best": {"id": best.id, "result": best.result.to_dict() if best.result else None,
                         "lineage": [c.id for c in store.lineage(best.id)]} if best else None}
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    Console().print(report_markdown(store, run_id))


@runs_app.command("export-best")
def runs_export_best(run_id: str = typer.Argument(..., help="the run's id (or a unique prefix)"),
                     out: Optional[Path] = typer.Option(None, help="where to write the kernel [default: RUN_best.py]"),
                     db: Optional[str] = typer.Option(None, help=DB_HELP)) -> None:
    """Write the run's best verified kernel (and its report) again."""
    from kernelsmith.agent import write_best

    store = existing_store(db)
    try:
        store.get_run(run_id)
    except (KeyError, LookupError, ValueError) as exc:
        fail(f"no run {run_id!r}: {exc}")
    target = out or Path(f"{run_id}_best.py")
    if write_best(store, run_id, target) is None:
        fail("this run has no candidate verified correct", code=1)
    Console().print(f"wrote {target} and {target.with_suffix('.md')}")
