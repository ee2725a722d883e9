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

from kernelsmith.cli_search import _fail, _options, _store
from kernelsmith.live import LiveView

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command()(bench)


class BenchView(LiveView):
    """on_event for run_bench / run_generations: tasks done of total, per-task best, verdicts."""

    def __init__(self, console: Console, title: str):
        self.console, self.title = console, title
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
                v = info.get("verdict", "?")
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
        return Group(head, t)


def bench(
    suite: Optional[Path] = typer.Option(None, help="our task suite (tasks/levelN/NNN_name.py)"),
    kernelbench: Optional[Path] = typer.Option(None, help="a KernelBench checkout (or its KernelBench/ folder)"),
    dataset: Optional[Path] = typer.Option(None, help="KernelBench dataset saved as .parquet or .jsonl"),
    generations: Optional[Path] = typer.Option(None, help="JSONL of ready-made kernels to evaluate"),
    label: str = typer.Option("", help="model label of --generations (e.g. cuda-l1-release)"),
    level: Optional[int] = typer.Option(None, min=1, help="only this level"),
    tasks: Optional[str] = typer.Option(None, help="problem ids, e.g. 1-20,25"),
    model: Optional[str] = typer.Option(None, help="model name, or replay:FILE"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint"),
    strategy: str = typer.Option("refine", help="refine | contrastive | evolve | best-of-n"),
    budget: int = typer.Option(16, min=1, help="candidates per task"),
    samples: Optional[int] = typer.Option(None, help="N independent samples per task (best-of-n with budget N), "
                                                     "for pass@k / fast_p@k / proficiency on the leaderboard"),
    option: List[str] = typer.Option([], "--option", "-o", help="strategy option KEY=VALUE (repeatable)"),
    resume: Optional[str] = typer.Option(None, help="continue the bench run with this id"),
    db: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the run database (default sqlite runs.db)"),
    gpus: Optional[str] = typer.Option(None, help="GPU indices to use, e.g. 0,1 (default: all visible)"),
    sandbox: str = typer.Option("auto", help="auto | process | docker"),
    executor: str = typer.Option("local", help="local (one worker per GPU here) | ray (one actor per GPU of a cluster)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray; default: start one)"),
    seed: int = typer.Option(0),
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
    from kernelsmith.evaluate.pool import EvaluatorPool, parse_gpus
    from kernelsmith.kernelbench import BenchInputError, load_any
    from kernelsmith.llm.client import make_model
    from kernelsmith.llm.types import LLMError
    from kernelsmith.search.base import Budget

    console = Console()
    try:
        gpu_list = parse_gpus(gpus)
    except ValueError as exc:
        _fail(str(exc))
    store = _store(db)

    if executor not in ("local", "ray"):
        _fail(f"--executor is local or ray, not {executor!r}")

    def make_pool():
        try:
            if executor == "ray":
                from kernelsmith.evaluate.ray_pool import make_ray_pool, ray_available

                ok, why = ray_available()
                if not ok:
                    _fail(why)
                pool = make_ray_pool(EvalConfig.from_env(sandbox=sandbox), address=address)
            else:
                pool = EvaluatorPool(EvalConfig.from_env(sandbox=sandbox), gpus=gpu_list)
            pool.probe()
            return pool
        except NoGPU as exc:
            _fail(f"{exc}; `kernelsmith bench` evaluates on CUDA GPUs")
        except (RuntimeError, ValueError, OSError) as exc:
            _fail(str(exc))

    if samples is not None and (generations is not None or resume):
        _fail("--samples starts a new bench run; --generations rows are the samples themselves, and --resume "
              "continues the run's own plan")
    if generations is not None:
        if suite is None and kernelbench is None and dataset is not None:
            _fail("--generations resolves references with --kernelbench PATH or --suite PATH (not --dataset)")
        if not generations.is_file():
            _fail(f"generations file not found: {generations}")
        pool = make_pool()
        try:
            with pool, BenchView(console, f"generations {label or generations.name}") as view:
                out = run_generations(generations, pool, store, reference_root=kernelbench, suite=suite,
                                      label=label, on_event=view)
        except BenchInputError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            err.print("interrupted: the evaluations finished so far are in runs.db")
            raise typer.Exit(130)
        for r in out.skipped[:20]:
            err.print(f"[yellow]skipped[/] {r.where}: {r.reason}")
        console.print(summary_table(out.summary, f"run {out.run_id}: {label or generations.name}"))
        return

    if resume:
        try:
            info = store.get_run(resume)
        except (KeyError, LookupError, ValueError) as exc:
            _fail(f"no run {resume!r} to resume: {exc}")
        if info.kind != "bench":
            _fail(f"run {info.id} is a {info.kind} run, not a bench run")
        selected, skipped = run_task_list(store, info.id), []
        req = request_from_run(info)
        model = model or info.model
        resume = info.id
    else:
        try:
            loaded = load_any(suite=suite, kernelbench=kernelbench, dataset=dataset, levels=level, tasks=tasks)
        except BenchInputError as exc:
            _fail(str(exc))
        for s in loaded.skipped:
            err.print(f"[yellow]skipped[/] {s.origin}: {s.reason}")
        selected, skipped = loaded.tasks, loaded.skipped
        req = OptimizeRequest("", model or "", strategy, Budget(max_candidates=budget),
                              strategy_options=_options(option), base_url=base_url, seed=seed)
        if samples is not None:
            try:
                req = sample_request(req, samples)
            except ValueError as exc:
                _fail(str(exc))
    req.sanitize, req.confirm = sanitize, confirm
    if not selected:
        _fail("no tasks selected" + (" (every selected task was skipped; see above)" if skipped else
                                     "; check --level / --tasks"))
    try:
        llm = make_model(model or "", base_url=base_url or req.base_url)
    except (LLMError, ValueError) as exc:
        _fail(str(exc))
    req.model = llm.name
    source = {"suite": str(suite) if suite else None, "kernelbench": str(kernelbench) if kernelbench else None,
              "dataset": str(dataset) if dataset else None, "level": level, "tasks_spec": tasks}
    pool = make_pool()
    try:
        with pool, BenchView(console, f"bench {llm.name} ({req.strategy})") as view:
            out = run_bench(selected, req, llm, pool, store, run_id=resume, on_event=view, skipped=skipped,
                            meta={"source": source})
    except KeyboardInterrupt:
        err.print("interrupted: everything evaluated so far is in runs.db; continue with --resume")
        raise typer.Exit(130)
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(str(exc))
    for t in out.tasks:
        if t.status == "failed":
            err.print(f"[red]failed[/] {t.bench.label}: {t.reason}")
    console.print(summary_table(out.summary, f"run {out.run_id}: {llm.name}, {req.strategy}"))
    if out.status == "interrupted":
        err.print(f"interrupted: continue with --resume {out.run_id}")
        raise typer.Exit(130)
