"""Every export parses and carries the numbers; the CLI; the reproducibility bundle; PNGs."""

from __future__ import annotations

import csv
import io
import json

import pytest
import typer
from typer.testing import CliRunner

from kernelsmith.cli.leaderboard import register
from kernelsmith.leaderboard import build, render, write, write_bundle
from lb_helpers import gm

approx = pytest.approx


@pytest.fixture(scope="module")
def lb(filled):
    return build(filled.store)


def test_json(lb, filled):
    d = json.loads(render(lb, "json"))
    assert d["schema"] == "kernelsmith.leaderboard/1" and "fast_p" in d["definitions"]
    assert [g["name"] for g in d["groups"]] == ["A", "B"]
    runs = {r["run_id"]: r for g in d["groups"] for r in g["runs"]}
    a, b = runs[filled.ids["a"]], runs[filled.ids["b"]]
    assert (a["fast_0"], a["fast_1"], a["fast_1.5"], a["fast_2"]) == approx((0.8, 0.4, 0.4, 0.2))
    assert a["geomean_eager_correct"] == approx(gm(2.5, 0.8, 1.6, 1.0))
    assert a["geomean_eager_all"] == approx(gm(2.5, 0.8, 1.6, 1.0, 1.0))
    assert a["cost_per_task_usd"] == approx(0.2) and a["wins_per_usd"] == approx(2.0)
    assert a["levels"]["2"]["fast_0"] == approx(0.5) and b["replayed"] is True and b["rank"] == 1
    assert runs[filled.ids["c"]]["wins_per_usd"] is None
    assert len(a["fast_p_curve"]) == 81 and a["fast_p_curve"][0] == [0.0, approx(0.8)]
    assert {t["name"]: t["speedup_eager"] for t in a["tasks_detail"]}["relu"] == 2.5


def test_csv(lb, filled):
    rows = list(csv.DictReader(io.StringIO(render(lb, "csv"))))
    assert len(rows) == 9  # 3 runs x (all + 2 levels)
    a = next(r for r in rows if r["run_id"] == filled.ids["a"] and r["scope"] == "all")
    assert a["reference_set"] == "A" and a["rank"] == "2" and a["tasks"] == "5"
    assert float(a["fast_1"]) == approx(0.4) and float(a["fast_2"]) == approx(0.2)
    assert float(a["geomean_eager_correct"]) == approx(gm(2.5, 0.8, 1.6, 1.0))
    assert float(a["cost_per_task_usd"]) == approx(0.2) and float(a["gpu_seconds_per_task"]) == approx(3.2)
    assert float(a["tokens_per_task"]) == approx(600) and float(a["wins_per_usd"]) == approx(2.0)
    l1 = next(r for r in rows if r["run_id"] == filled.ids["a"] and r["scope"] == "level1")
    assert float(l1["fast_1"]) == approx(1 / 3) and float(l1["geomean_eager_correct"]) == approx(gm(2.5, 0.8, 1.0))
    c = next(r for r in rows if r["run_id"] == filled.ids["c"] and r["scope"] == "all")
    assert c["reference_set"] == "B" and c["wins_per_usd"] == "" and c["label"] == "v2"


def test_md(lb, filled):
    md = render(lb, "md")
    assert "## reference set A (5 tasks" in md and "## reference set B (5 tasks" in md
    assert "wins/$" in md and "fail=1x" in md
    row_b = next(line for line in md.splitlines() if line.startswith(f"| 1 | {filled.ids['b']} |"))
    assert "| gpt-b | best-of-n | NVIDIA H200 | [replay] | 5 | 80.0% | 80.0% | 40.0% | 20.0% |" in row_b
    assert f"{gm(1.1, 1.8, 3.0, 1.2):.3f}x" in row_b and "| 0.8000 |" in row_b
    row_a = next(line for line in md.splitlines() if line.startswith(f"| 2 | {filled.ids['a']} |"))
    assert "| 80.0% | 40.0% | 40.0% | 20.0% |" in row_a and "| 2.00 |" in row_a
    assert "'relu' has 2 reference versions" in md


def test_write_with_pngs(lb, tmp_path):
    paths = write(lb, "md", tmp_path / "board.md")
    names = sorted(p.name for p in paths)
    assert names == ["board.md", "board_fastp.png", "board_speedups.png"]
    for p in paths[1:]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_bundle(lb, filled, tmp_path):
    manifest = json.loads(write_bundle(lb, filled.store, tmp_path / "bundle").read_text())
    root = tmp_path / "bundle"
    assert json.loads((root / "leaderboard.json").read_text())["groups"][0]["name"] == "A"
    refs = manifest["references"]
    assert filled.tasks["relu"].hash in refs and filled.relu_v2.hash in refs
    assert (root / refs[filled.relu_v2.hash]["file"]).read_text() == filled.relu_v2.source
    run_a = next(r for g in manifest["groups"] for r in g["runs"] if r["run_id"] == filled.ids["a"])
    relu = next(t for t in run_a["tasks_detail"] if t["name"] == "relu")
    assert relu["speedup_eager"] == 2.5
    assert "for relu" in (root / relu["files"]["kernel"]).read_text()
    timing = json.loads((root / relu["files"]["timing"]).read_text())
    assert timing["candidate_samples_ms"] == approx([0.8 * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)])
    assert timing["eager_samples_ms"] == approx([2.0 * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)])
    system = json.loads((root / relu["files"]["system"]).read_text())
    assert system["hardware"]["gpu"] == "NVIDIA H200" and system["result_system"]["driver"] == "580.65"
    assert json.loads((root / relu["files"]["baseline"]).read_text())["from_evaluation"]["eager_ms"] == 2.0
    conv = next(t for t in run_a["tasks_detail"] if t["name"] == "conv")
    assert conv["status"] == "no correct kernel" and conv["files"] == {}


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def _other() -> None:  # a second command keeps typer from collapsing to a single command
        pass

    return app


def test_cli(filled, tmp_path):
    runner = CliRunner()
    res = runner.invoke(_app(), ["leaderboard", "--db", str(filled.db), "--format", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert sum(len(g["runs"]) for g in d["groups"]) == 3
    out = tmp_path / "lb.html"
    res = runner.invoke(_app(), ["leaderboard", "--db", str(filled.db), "--format", "html", "--out", str(out),
                                 "--bundle", str(tmp_path / "b"), "--runs", f"{filled.ids['a']},{filled.ids['b']}"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and (tmp_path / "lb_fastp.png").is_file() and (tmp_path / "lb_speedups.png").is_file()
    assert (tmp_path / "b" / "manifest.json").is_file()
    html = out.read_text()
    assert filled.ids["a"] in html and filled.ids["c"] not in html
    res = runner.invoke(_app(), ["leaderboard", "--db", str(filled.db), "--kind", "bench", "--format", "csv"])
    assert res.exit_code == 0 and filled.ids["c"] in res.stdout and filled.ids["a"] not in res.stdout
    res = runner.invoke(_app(), ["leaderboard", "--db", str(filled.db), "--format", "pdf"])
    assert res.exit_code == 2
    res = runner.invoke(_app(), ["leaderboard", "--db", str(filled.db), "--runs", "r-nope"])
    assert res.exit_code == 2
    res = runner.invoke(_app(), ["leaderboard", "--db", str(tmp_path / "missing.db")])
    assert res.exit_code == 2 and not (tmp_path / "missing.db").exists()
