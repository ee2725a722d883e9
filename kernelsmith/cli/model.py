"""CLI command `model`: whole-model mode (kernelsmith.model.pipeline) over a model file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from kernelsmith.cli.common import (
    BUDGET_HELP, DB_HELP, LANGUAGE, MAX_COST, MAX_MINUTES, MAX_TOKENS, PATIENCE, SANDBOX_HELP, STRATEGY_HELP, budget,
    check_language, check_sandbox, one_gpu, parse_options, resolve_language,
)
from kernelsmith.cli.errors import fail, note


def register(app: typer.Typer) -> None:
    app.command("model")(model_cmd)


def model_cmd(
    model_file: Path = typer.Argument(..., help="model file, KernelBench layout: class Model, get_inputs(), "
                                                "get_init_inputs() (built under torch.manual_seed(0), eval mode)"),
    model: Optional[str] = typer.Option(None, help="LLM for every group's search (as for optimize: a name, "
                                                   "replay:FILE, scripted:FILE)"),
    generations: Optional[Path] = typer.Option(None, help="JSONL of ready-made kernels, {\"key\": GROUP, \"code\": ...} "
                                                          "per row: each group is searched with its own rows only"),
    top: int = typer.Option(4, min=1, help="how many of the hottest groups to extract and optimize"),
    only: Optional[str] = typer.Option(None, help="comma-separated group keys to optimize instead of the top ones"),
    kinds: Optional[str] = typer.Option(None, help="only groups of these kinds: fused,heavy,other [default: all]"),
    strategy: str = typer.Option("refine", help=STRATEGY_HELP),
    language: Optional[str] = LANGUAGE,
    budget_n: int = typer.Option(8, "--budget", min=1, help=BUDGET_HELP + " (per group)"),
    max_tokens: Optional[int] = MAX_TOKENS,
    max_cost: Optional[float] = MAX_COST,
    max_minutes: Optional[float] = MAX_MINUTES,
    patience: Optional[int] = PATIENCE,
    option: List[str] = typer.Option([], "--option", "-o", help="strategy option KEY=VALUE (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="directory for tasks, kernels and the report "
                                                  "[default: MODEL_kernelsmith/]"),
    export_dir: Optional[Path] = typer.Option(None, "--export", help="also write the installed kernels as a pip-"
                                                                     "installable package in this directory"),
    package: Optional[str] = typer.Option(None, help="the exported package's name [default: ks_MODEL_kernels]"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint (as for optimize)"),
    min_speedup: float = typer.Option(1.0, min=0.0, help="install a group's kernel only when its verified speedup "
                                                         "over eager is above this"),
    atol: Optional[float] = typer.Option(None, help="end-to-end absolute tolerance [default: by dtype, as the harness]"),
    rtol: Optional[float] = typer.Option(None, help="end-to-end relative tolerance [default: by dtype]"),
    dry_run: bool = typer.Option(False, "--dry-run", help="no GPU: extract the tasks, then screen and compile each "
                                                          "group's candidates; nothing is run, installed or written "
                                                          "to runs.db"),
    extract_only: bool = typer.Option(False, "--extract-only", help="profile and write the task files; no search"),
    sandbox: str = typer.Option("auto", help=SANDBOX_HELP),
    sanitize: bool = typer.Option(True, "--sanitize/--no-sanitize", help="compute-sanitizer on each new best"),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm", help="evaluate each new best a second time"),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="the GPU index to evaluate and run on [default: 0]"),
    seed: int = typer.Option(0, help="seed of the searches"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON on stdout"),
) -> None:
    """Profile a model, extract its hottest operators and fused chains as tasks, optimize each, install the
    verified winners as torch.library custom ops and verify the whole model end to end."""
    import torch

    from kernelsmith.model.errors import ModelError
    from kernelsmith.model.pipeline import load_model_file, optimize_model, read_generations, write_report
    from kernelsmith.model.search import SearchSettings, Searcher

    check_sandbox(sandbox)
    check_language(language)
    gpu = one_gpu(gpus)
    if model and generations:
        fail("give --model or --generations, not both")
    if not (model or generations or extract_only):
        fail("give --model M (an LLM), --generations FILE (ready-made kernels) or --extract-only")
    kind_set = None
    if kinds:
        kind_set = {k.strip() for k in kinds.split(",") if k.strip()}
        if not kind_set <= {"fused", "heavy", "other"}:
            fail(f"--kinds takes fused, heavy and/or other, not {kinds!r}")
    keys = [k.strip() for k in only.split(",") if k.strip()] if only else None
    say = (lambda m: note(m)) if as_json else (lambda m: Console().print(m, soft_wrap=True, markup=False))
    try:
        replies = read_generations(generations) if generations else None
        need_gpu = not (dry_run or extract_only)
        if need_gpu and not torch.cuda.is_available():
            fail("whole-model mode runs the model on a CUDA GPU and none is visible (--dry-run or --extract-only "
                 "work without one)")
        device = f"cuda:{gpu}" if need_gpu else None
        module, inputs, name = load_model_file(model_file, device)
        settings = SearchSettings(model=model or "", base_url=base_url, strategy=strategy,
                                  budget=budget(budget_n, max_tokens, max_cost, max_minutes, patience),
                                  options=parse_options(option), language=resolve_language(language, "", False),
                                  seed=seed, sanitize=sanitize, confirm=confirm, db=db)
        out_dir = out or Path(f"{name}_kernelsmith")
        searcher = Searcher(settings, dry_run=dry_run, gpu=gpu, sandbox=sandbox)
        if extract_only:
            report, opt, winners = optimize_model(module, inputs, name, searcher, out_dir, top=top, only=keys,
                                                  kinds=kind_set, origin=str(model_file), extract_only=True, note=say)
        else:
            with searcher:
                report, opt, winners = optimize_model(
                    module, inputs, name, searcher, out_dir, top=top, only=keys, kinds=kind_set, replies_for=replies,
                    replies_name=str(generations or ""), min_speedup=min_speedup, atol=atol, rtol=rtol,
                    origin=str(model_file), dry_run=dry_run, note=say,
                    on_progress=lambda r: write_report(r, out_dir))
        md, js = write_report(report, out_dir)
        pkg = None
        if export_dir and winners:
            from kernelsmith.model.export import export_package

            pkg = export_package(report, winners, opt, export_dir, package or f"ks_{name}_kernels")
        elif export_dir:
            note("nothing to export: no kernel was installed", prefix="skipped", style="yellow")
    except ModelError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        note("interrupted: every search so far is in runs.db")
        raise typer.Exit(130)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    else:
        Console().print(report.markdown(), soft_wrap=True, markup=False)
        Console().print(f"report {md} ({js})" + (f"; package {pkg}" if pkg else ""), soft_wrap=True, markup=False)
