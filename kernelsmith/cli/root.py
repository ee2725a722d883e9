"""The `kernelsmith` command: a typer app over the Python API; each command lives in its
own module of this package and registers itself here."""

from __future__ import annotations

import logging
from typing import Optional

import typer

from kernelsmith.cli import bench, evaluate, export, leaderboard, model, search, serve
from kernelsmith.cli.common import CONTEXT
from kernelsmith.cli.errors import fail, install_log_masking

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings=CONTEXT, rich_markup_mode=None,
                  help="kernelsmith: LLM-written CUDA kernels for PyTorch, proven correct and fast on a real GPU.")


def version_string() -> str:
    from importlib import metadata

    try:
        return f"kernelsmith {metadata.version('kernelsmith')}"
    except metadata.PackageNotFoundError:
        return "kernelsmith (not installed)"


def _version(value: bool) -> None:
    if value:
        typer.echo(version_string())
        raise typer.Exit(0)


@app.callback()
def _root(version: Optional[bool] = typer.Option(None, "--version", "-V", is_eager=True, callback=_version,
                                                 help="print the version and exit")) -> None:
    """kernelsmith: LLM-written CUDA kernels for PyTorch, proven correct and fast on a real GPU."""
    from kernelsmith.config import EvalConfig

    try:  # the KERNELSMITH_* switches, read before any command opens or writes anything
        EvalConfig.from_env()
    except ValueError as exc:
        fail(str(exc))


evaluate.register(app)
search.register(app)
bench.register(app)
serve.register(app)
leaderboard.register(app)
export.register(app)
model.register(app)


def reap_children(grace_s: float = 3.0) -> list[int]:
    """End every process this one started that is still alive (a sandbox server caught
    mid-start by Ctrl-C, a Ray worker): SIGTERM, then SIGKILL after `grace_s`. Commands
    close what they open; this is the last line, so that no process outlives the command."""
    import psutil

    try:
        kids = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    for k in kids:
        try:
            k.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(kids, timeout=grace_s)
    for k in alive:
        try:
            k.kill()
        except psutil.Error:
            pass
    return [k.pid for k in kids]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_log_masking()
    try:
        app()
    finally:
        reap_children()
