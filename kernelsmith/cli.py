"""Command line: thin typer commands over the Python API."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from kernelsmith.config import EvalConfig

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="kernelsmith: LLM-written CUDA kernels for PyTorch, proven correct and fast on a real GPU.")
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _read_candidate(path: Path) -> str:
    if not path.is_file():
        _fail(f"candidate file not found: {path}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read candidate {path}: {exc}")
    return ""


def _task_and_candidate(task: Path, candidate: Path):
    from kernelsmith.task import Task, TaskError

    try:
        t = Task.load(task)
    except TaskError as exc:
        _fail(str(exc))
    return t, _read_candidate(candidate)


@app.command("eval")
def eval_cmd(
    task: Path = typer.Argument(..., help="KernelBench-format task file (class Model, get_inputs, get_init_inputs)"),
    candidate: Path = typer.Argument(..., help="candidate file defining class ModelNew"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout"),
    trials: int = typer.Option(5, min=1, help="correctness trials on fresh random inputs"),
    atol: Optional[float] = typer.Option(None, help="absolute tolerance (default by dtype)"),
    rtol: Optional[float] = typer.Option(None, help="relative tolerance (default by dtype)"),
    gpu: int = typer.Option(0, min=0, help="which GPU"),
    sandbox: str = typer.Option("auto", help="auto | process | docker"),
    no_compile_baseline: bool = typer.Option(False, help="skip the torch.compile baseline"),
    no_cache: bool = typer.Option(False, help="ignore cached evaluation results"),
    max_seconds: Optional[float] = typer.Option(None, min=0.5, help="cap on timing time per candidate "
                                                "[default: KERNELSMITH_MAX_TIMING_SECONDS, else 8]"),
) -> None:
    """Evaluate one candidate against one task on the GPU: compile, check, time."""
    from kernelsmith.evaluate.evaluator import Evaluator, NoGPU
    from kernelsmith.report import render

    t, code = _task_and_candidate(task, candidate)
    cfg = EvalConfig.from_env(trials=trials, atol=atol, rtol=rtol, gpu=gpu, sandbox=sandbox,
                              compile_baseline=not no_compile_baseline, use_cache=not no_cache,
                              timing={"max_seconds": max_seconds} if max_seconds is not None else None)
    try:
        with Evaluator(cfg) as ev:
            result = ev.evaluate(t, code)
    except NoGPU as exc:
        _fail(f"{exc}. `kernelsmith eval` needs a CUDA GPU; `kernelsmith compile` checks a candidate without one.")
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        render(result, Console())
    raise typer.Exit(0 if result.correct else 1)


@app.command("compile")
def compile_cmd(
    task: Path = typer.Argument(..., help="task file"),
    candidate: Path = typer.Argument(..., help="candidate file"),
    arch: str = typer.Option("9.0", help="target compute capability"),
    as_json: bool = typer.Option(False, "--json"),
    sandbox: str = typer.Option("auto", help="auto | process | docker"),
) -> None:
    """Static screen + compile only (no GPU needed): does this candidate build?"""
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.results import _encode

    t, code = _task_and_candidate(task, candidate)
    try:
        with Evaluator(EvalConfig.from_env(arch=arch, sandbox=sandbox)) as ev:
            res = ev.compile(t, code)
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(_encode(res), indent=2) + "\n")
    else:
        Console().print(f"compile: {'[green]ok' if res.ok else '[red]FAILED'}[/] backend={res.backend or '-'} "
                        f"{'(cache hit)' if res.cached else f'{res.seconds:.2f} s'} {res.message}")
        if res.log:
            Console().print(res.log)
    raise typer.Exit(0 if res.ok else 1)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json")) -> None:
    """What this machine can do: GPUs, nvcc, torch, CuPy, Docker, and the sandbox in use."""
    from kernelsmith.doctor import diagnose, render_doctor

    report = diagnose()
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        render_doctor(report, Console())


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


# The other commands live in their own modules.
from kernelsmith import cli_bench, cli_export, cli_leaderboard, cli_search, cli_serve  # noqa: E402

cli_search.register(app)
cli_bench.register(app)
cli_serve.register(app)
cli_leaderboard.register(app)
cli_export.register(app)

if __name__ == "__main__":
    main()
