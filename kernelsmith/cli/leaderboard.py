"""CLI command ``kernelsmith leaderboard``: rank the runs recorded in runs.db (see
``kernelsmith.leaderboard`` for every metric's definition)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from kernelsmith.cli.common import DB_HELP, db_label, open_store
from kernelsmith.cli.errors import fail, note

KINDS = ("bench", "generations", "optimize", "serve", "eval")


def register(app: typer.Typer) -> None:
    app.command("leaderboard")(leaderboard)


def leaderboard(
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    fmt: Optional[str] = typer.Option(None, "--format", help="table | md | csv | json | html "
                                                            "[default: table on a terminal, else md]"),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
    out: Optional[Path] = typer.Option(None, help="write here (plus <out>_fastp.png and <out>_speedups.png); "
                                                  "default: print to stdout, no PNGs"),
    bundle: Optional[Path] = typer.Option(None, help="also write a reproducibility bundle into this directory"),
    runs: Optional[str] = typer.Option(None, help="only these runs: comma-separated ids or unique prefixes"),
    kind: Optional[str] = typer.Option(None, help="only runs of this kind: bench | generations | optimize"),
    no_png: bool = typer.Option(False, "--no-png", help="with --out: skip the PNG plots"),
) -> None:
    """Rank runs by model, strategy and GPU: fast_p, geomean speedups, cost; md/csv/json/html."""
    from sqlalchemy.exc import SQLAlchemyError

    from kernelsmith.leaderboard import FORMATS, build, render, write, write_bundle
    from kernelsmith.store.queries import NotFound

    if as_json:
        if fmt not in (None, "json"):
            fail(f"--json and --format {fmt} disagree: give one of them")
        fmt = "json"
    if fmt is None:
        fmt = "table" if out is None and sys.stdout.isatty() else "md"
    if fmt not in FORMATS + ("table",) or (fmt == "table" and out is not None):
        fail(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}"
             + ("" if out is not None else " (or table, on a terminal)"))
    if kind is not None and kind not in KINDS:
        fail(f"unknown --kind {kind!r}: use one of {', '.join(KINDS)}")
    run_ids = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
    if db is not None and "://" not in db and not Path(db).expanduser().is_file():
        fail(f"no run database at {db}")
    if db is None and "://" not in (os.environ.get("KERNELSMITH_DB") or "runs.db") \
            and not Path(os.environ.get("KERNELSMITH_DB") or "runs.db").expanduser().is_file():
        fail(f"no run database at {os.environ.get('KERNELSMITH_DB') or 'runs.db'} (pass --db, or run where runs.db is)")
    try:
        lb = build(db, run_ids=run_ids, kind=kind)
    except NotFound as exc:
        fail(str(exc))
    except (SQLAlchemyError, OSError, ValueError) as exc:
        fail(f"cannot read the run database {db_label(db)}: {str(exc).splitlines()[0]}")
    if not lb.groups:
        note("no runs with tasks matched", style="yellow")
    if fmt == "table":
        from kernelsmith.leaderboard.terminal import print_table

        print_table(lb)
    elif out is None:
        sys.stdout.write(render(lb, fmt))
        sys.stdout.write("" if fmt == "csv" else "\n")
    else:
        try:
            paths = write(lb, fmt, out, pngs=not no_png)
        except ImportError as exc:
            fail(f"the PNG plots need matplotlib ({exc}); install it or pass --no-png")
        for p in paths:
            note(f"wrote {p}")
    if bundle is not None:
        manifest = write_bundle(lb, db, bundle)
        note(f"wrote bundle {manifest}")
