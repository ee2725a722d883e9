"""The one error of model capture and install: ModelError, a ValueError whose message says
what to change (the CLI prints it through kernelsmith.cli.errors.fail)."""

from __future__ import annotations


class ModelError(ValueError):
    """A module, example input or model file kernelsmith cannot optimize, and why."""
