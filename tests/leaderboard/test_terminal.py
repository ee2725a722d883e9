"""The leaderboard on a terminal is a rich table of the columns that fit, not raw Markdown."""

from __future__ import annotations

import typer
from rich.console import Console
from typer.testing import CliRunner

from kernelsmith.cli.leaderboard import register
from kernelsmith.leaderboard import build
from kernelsmith.leaderboard.terminal import render_table


def test_rich_table_of_every_run(filled):
    con = Console(width=160, record=True)
    con.print(render_table(build(filled.store)))
    text = con.export_text()
    assert "reference set A" in text and "reference set B" in text
    assert "| rank |" not in text and "|---|" not in text  # not Markdown
    for key in ("a", "b", "c"):
        assert filled.ids[key] in text
    head = next(line for line in text.splitlines() if "fast_1" in line)
    assert "model" in head and "correct" in head
    assert head.count("┃") - 1 < 19  # a screen's worth of columns, not all 19


def test_cli_table_format_and_json_alias(filled):
    a = typer.Typer()
    register(a)
    a.command()(lambda: None)
    r = CliRunner().invoke(a, ["leaderboard", "--db", str(filled.db), "--format", "table"])
    assert r.exit_code == 0, r.output
    assert "reference set A" in r.output and "|---|" not in r.output
    r = CliRunner().invoke(a, ["leaderboard", "--db", str(filled.db), "--json"])
    assert r.exit_code == 0 and r.output.lstrip().startswith("{")
    r = CliRunner().invoke(a, ["leaderboard", "--db", str(filled.db), "--json", "--format", "csv"])
    assert r.exit_code == 2 and "disagree" in r.output
    r = CliRunner().invoke(a, ["leaderboard", "--db", str(filled.db)])  # not a terminal: Markdown, as before
    assert r.exit_code == 0 and "|---|" in r.output
