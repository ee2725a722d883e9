"""`kernelsmith eval`, `compile` and `doctor`: one candidate against one task, and this machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from kernelsmith.cli.common import GPUS_HELP, SANDBOX_HELP, check_sandbox, one_gpu
from kernelsmith.cli.errors import fail, mask_secrets
from kernelsmith.config import EvalConfig


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("compile")(compile_cmd)
    app.command("doctor")(doctor)


def read_candidate(path: Path) -> str:
    if not path.is_file():
        fail(f"candidate file not found: {path}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read candidate {path}: {exc}")


def task_and_candidate(task: Path, candidate: Path):
    from kernelsmith.task import Task, TaskError

    try:
        t = Task.load(task)
    except TaskError as exc:
        fail(str(exc))
    return t, read_candidate(candidate)


def eval_cmd(
    task: Path = typer.Argument(..., help="KernelBench-format task file (class Model, get_inputs, get_init_inputs)"),
    candidate: Path = typer.Argument(..., help="candidate file defining class ModelNew"),
    as_json: bool = typer.Option(False, "--json", help="print the whole layered result as JSON on stdout"),
    trials: int = typer.Option(5, min=1, help="correctness trials on fresh random inputs"),
    atol: Optional[float] = typer.Option(None, help="absolute tolerance [default: by dtype, fp32 1e-4, fp16/bf16 1e-2]"),
    rtol: Optional[float] = typer.Option(None, help="relative tolerance [default: by dtype, as atol]"),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="the GPU index to evaluate on [default: 0]"),
    old_gpu: Optional[int] = typer.Option(None, "--gpu", min=0, hidden=True, help="old name of --gpus"),
    sandbox: str = typer.Option("auto", help=SANDBOX_HELP),
    no_compile_baseline: bool = typer.Option(False, "--no-compile-baseline", help="skip the torch.compile baseline"),
    no_cache: bool = typer.Option(False, "--no-cache", help="ignore cached evaluation results"),
    max_seconds: Optional[float] = typer.Option(None, min=0.5, help="cap on timing time per candidate "
                                                "[default: KERNELSMITH_MAX_TIMING_SECONDS, else 8]"),
) -> None:
    """Evaluate one candidate against one task on the GPU: compile, check, time.
    Exits 0 when correct, 1 when not, 2 on bad input or no GPU."""
    from kernelsmith.evaluate.evaluator import Evaluator, NoGPU
    from kernelsmith.cli.report import render

    check_sandbox(sandbox)
    gpu = one_gpu(gpus, old_gpu)
    t, code = task_and_candidate(task, candidate)
    cfg = EvalConfig.from_env(trials=trials, atol=atol, rtol=rtol, gpu=gpu, sandbox=sandbox,
                              compile_baseline=not no_compile_baseline, use_cache=not no_cache,
                              timing={"max_seconds": max_seconds} if max_seconds is not None else None)
    try:
        with Evaluator(cfg) as ev:
            result = ev.evaluate(t, code)
    except NoGPU as exc:
        fail(f"{exc}. `kernelsmith eval` needs a CUDA GPU; `kernelsmith compile` checks a candidate without one.")
    except (RuntimeError, ValueError, OSError) as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        render(result, Console())
    raise typer.Exit(0 if result.correct else 1)


def compile_cmd(
    task: Path = typer.Argument(..., help="KernelBench-format task file"),
    candidate: Path = typer.Argument(..., help="candidate file defining class ModelNew"),
    arch: str = typer.Option("9.0", help="target compute capability"),
    as_json: bool = typer.Option(False, "--json", help="print the compile result as JSON on stdout"),
    sandbox: str = typer.Option("auto", help=SANDBOX_HELP),
) -> None:
    """Static screen + compile only (no GPU needed): does this candidate build?"""
    from rich.markup import escape

    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.results import _encode

    check_sandbox(sandbox)
    t, code = task_and_candidate(task, candidate)
    try:
        with Evaluator(EvalConfig.from_env(arch=arch, sandbox=sandbox)) as ev:
            res = ev.compile(t, code)
    except (RuntimeError, ValueError, OSError) as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(_encode(res), indent=2) + "\n")
    else:
        con = Console()
        con.print(f"compile: {'[green]ok' if res.ok else '[red]FAILED'}[/] backend={res.backend or '-'} "
                  f"{'(cache hit)' if res.cached else f'{res.seconds:.2f} s'} {escape(res.message)}", soft_wrap=True)
        if res.log:
            con.print(escape(mask_secrets(res.log)), soft_wrap=True, highlight=False)
    raise typer.Exit(0 if res.ok else 1)


def doctor(as_json: bool = typer.Option(False, "--json", help="print the report as JSON on stdout")) -> None:
    """What this machine can do: GPUs, nvcc, torch, CuPy, Docker, and the sandbox in use."""
    from kernelsmith.cli.doctor import diagnose, render_doctor

    report = diagnose()
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        render_doctor(report, Console())
