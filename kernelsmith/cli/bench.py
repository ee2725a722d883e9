"""`kernelsmith bench`: search a whole task set (our suite, a KernelBench checkout or its
dataset) with one GPU per task, or evaluate a file of ready-made generations."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from kernelsmith.cli.common import (
    BUDGET_HELP, DB_HELP, GPUS_HELP, LANGUAGE, MAX_COST, MAX_MINUTES, MAX_TOKENS, PATIENCE, SANDBOX_HELP,
    STRATEGY_HELP, budget, check_executor, check_language, check_sandbox, existing_store, memory_store, open_store,
    parse_options, resolve_language,
)
from kernelsmith.cli.errors import fail, note
from kernelsmith.cli.search import dry_run_summary, dry_run_table
from kernelsmith.cli.live import LiveView, dry_label


def register(app: typer.Typer) -> None:
    app.command()(bench)


class BenchView(LiveView):
    """on_event for run_bench / run_generations: tasks done of total, per-task best, verdicts."""

    def __init__(self, console: Console, title: str, dry_run: bool = False):
        self.console, self.title, self.dry_run = console, title, dry_run
        self.t0 = time.monotonic()
        self.total = 0
        self.already = 0
        self.rows: dict[str, dict] = {}  # task label -> {status, best, gpu, reason}
        self.verdicts: dict[str, int] = {}
        self._start_live(console)

    def __call__(self, kind: str, info: dict) -> None:
        with self._lock:
            if kind in ("bench_start", "generations_start"):
                self.total = info.get("total", 0)
                self.already = info.get("already_done", 0)
            elif kind == "task_start":
                self.rows[info["task"]] = {"status": "running", "best": None, "gpu": info.get("gpu"), "reason": ""}
            elif kind == "task_done":
                row = self.rows.setdefault(info["task"], {"gpu": None})
                row.update(status=info.get("status"), best=info.get("speedup"), reason=info.get("reason", ""))
            elif kind == "search":
                sub, data = info.get("kind"), info.get("info", {})
                row = self.rows.setdefault(info["task"], {"status": "running", "best": None, "gpu": None,
                                                          "reason": ""})
                if sub == "candidate":
                    v = data.get("verdict", "?")
                    self.verdicts[v] = self.verdicts.get(v, 0) + 1
                elif sub == "best" and data.get("speedup"):
                    row["best"] = max(row.get("best") or 0.0, data["speedup"])
            elif kind == "generation":
                v = dry_label(info.get("verdict", "?"), self.dry_run)
                self.verdicts[v] = self.verdicts.get(v, 0) + 1
                self.rows[f"{len(self.rows)}"] = {"status": "done", "best": info.get("speedup"), "gpu": None,
                                                  "reason": ""}
        self.live.update(self.render())

    def render(self):
        done = sum(1 for r in self.rows.values() if r.get("status") in ("done", "failed")) + self.already
        s = int(time.monotonic() - self.t0)
        head = Text(f"{self.title}: {done}/{self.total} done  {s // 60}:{s % 60:02d}  "
                    + "  ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items())))
        t = Table("task", "gpu", "status", "best", "note", box=None)
        running = [(k, r) for k, r in self.rows.items() if r.get("status") == "running"]
        recent = [(k, r) for k, r in self.rows.items() if r.get("status") != "running"][-8:]
        for k, r in running + recent:
            if k.isdigit():
                continue
            t.add_row(k, "-" if r.get("gpu") is None else str(r["gpu"]), str(r.get("status")),
                      f"{r['best']:.3f}x" if r.get("best") else "-", (r.get("reason") or "")[:60])
        return Group(head, t) if t.row_count else head


def bench(
    suite: Optional[Path] = typer.Option(None, help="our task suite (tasks/levelN/NNN_name.py)"),
    kernelbench: Optional[Path] = typer.Option(None, help="a KernelBench checkout (or its KernelBench/ folder)"),
    dataset: Optional[Path] = typer.Option(None, help="KernelBench dataset saved as .parquet or .jsonl"),
    generations: Optional[Path] = typer.Option(None, help="JSONL of ready-made kernels to evaluate"),
    label: str = typer.Option("", help="model label of --generations (e.g. cuda-l1-release)"),
    level: Optional[int] = typer.Option(None, min=1, help="only this level"),
    tasks: Optional[str] = typer.Option(None, help="problem ids, e.g. 1-20,25"),
    model: Optional[str] = typer.Option(None, help="model name; replay:FILE or scripted:FILE as in optimize"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint"),
    strategy: str = typer.Option("refine", help=STRATEGY_HELP),
    language: Optional[str] = LANGUAGE,
    budget_n: int = typer.Option(16, "--budget", min=1, help=BUDGET_HELP),
    max_tokens: Optional[int] = MAX_TOKENS,
    max_cost: Optional[float] = MAX_COST,
    max_minutes: Optional[float] = MAX_MINUTES,
    patience: Optional[int] = PATIENCE,
    samples: Optional[int] = typer.Option(None, help="N independent samples per task (best-of-n with budget N), "
                                                     "for pass@k / fast_p@k / proficiency on the leaderboard"),
    option: List[str] = typer.Option([], "--option", "-o", help="strategy option KEY=VALUE (repeatable)"),
    resume: Optional[str] = typer.Option(None, help="continue the bench run with this id"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="with --generations, no GPU: static screen and compile "
                                                          "every row, time nothing, write nothing"),
    gpus: Optional[str] = typer.Option(None, help=GPUS_HELP),
    sandbox: str = typer.Option("auto", help=SANDBOX_HELP),
    executor: str = typer.Option("local", help="local (one worker per GPU here) | ray (one actor per GPU of a cluster)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray; default: start one)"),
    seed: int = typer.Option(0, help="seed of the searches"),
    sanitize: bool = typer.Option(True, "--sanitize/--no-sanitize",
                                  help="compute-sanitizer on each task's new best (searches); a finding disqualifies it"),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm",
                                 help="evaluate each task's new best a second time (searches); keep the lower speedup"),
) -> None:
    """Benchmark: search every selected task (one per GPU at a time) or evaluate --generations;
    prints a per-level table (correct rate, fast_1, geometric mean speedup over eager)."""
    from kernelsmith.agent import OptimizeRequest, request_from_run
    from kernelsmith.bench import run_bench, run_generations, run_task_list, sample_request, summary_table
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import NoGPU
    from kernelsmith.evaluate.executors.local import EvaluatorPool, parse_gpus
    from kernelsmith.bench.kernelbench import BenchInputError, load_any
    from kernelsmith.llm.client import make_model
    from kernelsmith.llm.types import LLMError

    # Every argument is checked before anything is opened or written (runs.db included).
    console = Console()
    try:
        gpu_list = parse_gpus(gpus)
    except ValueError as exc:
        fail(str(exc))
    check_executor(executor)
    check_sandbox(sandbox)
    check_language(language)
    if language is not None and generations is not None:
        fail("--language chooses what a search asks the model for; --generations rows are ready-made kernels "
             "(each one's language is read from its imports)")
    if dry_run and generations is None:
        fail("--dry-run checks a --generations file (static screen and compile of every row); "
             "for a search without a GPU use `kernelsmith optimize TASK --dry-run`")
    if dry_run and executor != "local":
        fail("--dry-run compiles on this machine; leave out --executor ray")

    def make_pool():
        try:
            if dry_run:
                from kernelsmith.cli.dryrun import DryRunEvaluator

                pool = DryRunEvaluator(EvalConfig.from_env(sandbox=sandbox))
            elif executor == "ray":
                from kernelsmith.evaluate.executors.ray import make_ray_pool, ray_available

                ok, why = ray_available()
                if not ok:
                    fail(why)
                pool = make_ray_pool(EvalConfig.from_env(sandbox=sandbox), address=address)
            else:
                pool = EvaluatorPool(EvalConfig.from_env(sandbox=sandbox), gpus=gpu_list)
            pool.probe()
            return pool
        except NoGPU as exc:
            fail(f"{exc}; `kernelsmith bench` evaluates on CUDA GPUs"
                 + ("" if generations is None else " (`--dry-run` screens and compiles a generations file without one)"))
        except (RuntimeError, ValueError, OSError) as exc:
            fail(str(exc))

    if samples is not None and (generations is not None or resume):
        fail("--samples starts a new bench run; --generations rows are the samples themselves, and --resume "
             "continues the run's own plan")
    if generations is not None:
        if suite is None and kernelbench is None and dataset is not None:
            fail("--generations resolves references with --kernelbench PATH or --suite PATH (not --dataset)")
        if not generations.is_file():
            fail(f"generations file not found: {generations}")
        for name, path in (("--suite", suite), ("--kernelbench", kernelbench)):
            if path is not None and not path.exists():
                fail(f"{name} {path}: folder not found")
        pool = make_pool()
        store = memory_store() if dry_run else open_store(db)
        title = f"{'dry run ' if dry_run else ''}generations {label or generations.name}"
        try:
            with pool, BenchView(console, title, dry_run=dry_run) as view:
                out = run_generations(generations, pool, store, reference_root=kernelbench, suite=suite,
                                      label=label, on_event=view)
        except BenchInputError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            note("interrupted: " + ("a dry run keeps nothing" if dry_run else
                                    "the evaluations finished so far are in runs.db"))
            raise typer.Exit(130)
        for r in out.skipped[:20]:
            note(f"{r.where}: {r.reason}", prefix="skipped", style="yellow")
        if dry_run:
            summary, compiled = dry_run_summary(pool.records)
            console.print()
            console.print(dry_run_table(pool.records, f"dry run of {generations}"))
            console.print(f"dry run: {summary}; nothing was run or timed, nothing written", soft_wrap=True)
            raise typer.Exit(0 if compiled == len(pool.records) and not out.skipped else 1)
        console.print(summary_table(out.summary, f"run {out.run_id}: {label or generations.name}"))
        _report_gpu_idle(console, pool, store, out.run_id)
        return

    if resume:
        store = existing_store(db)
        try:
            info = store.get_run(resume)
        except (KeyError, LookupError, ValueError) as exc:
            fail(f"no run {resume!r} to resume: {exc}")
        if info.kind != "bench":
            fail(f"run {info.id} is a {info.kind} run, not a bench run")
        selected, skipped = run_task_list(store, info.id), []
        req = request_from_run(info)
        req.language = resolve_language(language, req.language, resuming=True)
        model = model or info.model
        resume = info.id
    else:
        store = None
        try:
            loaded = load_any(suite=suite, kernelbench=kernelbench, dataset=dataset, levels=level, tasks=tasks)
        except BenchInputError as exc:
            fail(str(exc))
        for s in loaded.skipped:
            note(f"{s.origin}: {s.reason}", prefix="skipped", style="yellow")
        selected, skipped = loaded.tasks, loaded.skipped
        req = OptimizeRequest("", model or "", strategy, budget(budget_n, max_tokens, max_cost, max_minutes, patience),
                              strategy_options=parse_options(option), base_url=base_url, seed=seed,
                              language=resolve_language(language, "", resuming=False))
        if samples is not None:
            try:
                req = sample_request(req, samples)
            except ValueError as exc:
                fail(str(exc))
    req.sanitize, req.confirm = sanitize, confirm
    if not selected:
        fail("no tasks selected" + (" (every selected task was skipped; see above)" if skipped else
                                    "; check --level / --tasks"))
    try:
        llm = make_model(model or "", base_url=base_url or req.base_url)
    except (LLMError, ValueError) as exc:
        fail(str(exc))
    req.model = llm.name
    source = {"suite": str(suite) if suite else None, "kernelbench": str(kernelbench) if kernelbench else None,
              "dataset": str(dataset) if dataset else None, "level": level, "tasks_spec": tasks}
    pool = make_pool()
    if store is None:
        store = open_store(db)
    try:
        shown = req.strategy + ("" if req.language == "cuda" else f", language {req.language}")
        with pool, BenchView(console, f"bench {llm.name} ({shown})") as view:
            out = run_bench(selected, req, llm, pool, store, run_id=resume, on_event=view, skipped=skipped,
                            meta={"source": source})
    except KeyboardInterrupt:
        note("interrupted: everything evaluated so far is in runs.db; continue with --resume")
        raise typer.Exit(130)
    except (RuntimeError, ValueError, OSError) as exc:
        fail(str(exc))
    for t in out.tasks:
        if t.status == "failed":
            note(f"{t.bench.label}: {t.reason}", prefix="failed", style="red")
    console.print(summary_table(out.summary, f"run {out.run_id}: {llm.name}, {req.strategy}"))
    _report_gpu_idle(console, pool, store, out.run_id)
    if out.status == "interrupted":
        note(f"interrupted: continue with --resume {out.run_id}")
        raise typer.Exit(130)


def _report_gpu_idle(console, pool, store, run_id: str) -> None:
    """How long the GPUs waited on the compilers (issue 15): printed, and kept in the run's config."""
    from kernelsmith.evaluate.fastbuild import gpu_idle_of, idle_line

    idle = gpu_idle_of(pool)
    if idle is None:
        return
    console.print(idle_line(idle))
    try:
        store.merge_run_config(run_id, {"gpu_idle": idle})
    except Exception as exc:  # noqa: BLE001 - a figure not stored never fails the bench
        note(f"GPU idle not stored: {exc}", prefix="warning", style="yellow")
