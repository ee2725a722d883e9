"""The command line (`kernelsmith ...`): the typer app and its commands, one module each."""

from kernelsmith.cli.root import app, main

__all__ = ["app", "main"]
