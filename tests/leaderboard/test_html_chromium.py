"""The HTML page opened in headless Chromium: JS runs (sorting by #sort=...), table rows and
plots are in the DOM, and a screenshot renders. Install Chromium with .ci/chromium.sh.
Skipped (with the reason) without chromium, unless CI=true: there it fails."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernelsmith.leaderboard import build, render
from lb_helpers import in_ci


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if in_ci():
        pytest.fail("CI=true but chromium is missing: .ci/run must run `bash .ci/chromium.sh` first", pytrace=False)
    pytest.skip("headless Chromium not installed (run `bash .ci/chromium.sh`)")


def _run(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_html_in_chromium(filled, tmp_path):
    exe = _chromium()
    page = tmp_path / "leaderboard.html"
    page.write_text(render(build(filled.store), "html"), encoding="utf-8")
    html = page.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html

    # default order: rank (b, then a); #sort=speedup:asc puts a (1.337x) before b (1.634x)
    res = _run(exe, tmp_path / "p1", "--dump-dom", page.as_uri() + "#sort=speedup:asc")
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert 'data-js="ready"' in dom, "the page's script did not run"
    table = re.search(r'<table class="sortable leaderboard" id="table-A"[^>]*>.*?</table>', dom, re.S).group(0)
    assert 'data-sorted="speedup:asc"' in table
    order = re.findall(r'<tr class="run[^"]*" data-run="([^"]+)"', table)
    assert order == [filled.ids["a"], filled.ids["b"]]
    assert len(re.findall(r'<svg[^>]*class="plot plot-fastp"', dom)) == 2
    assert len(re.findall(r'<svg[^>]*class="plot plot-speedups"', dom)) == 2
    assert dom.count('<polyline class="series"') == 3 and 'addEventListener(\'click\'' in dom

    res = _run(exe, tmp_path / "p0", "--dump-dom", page.as_uri())  # no hash: rank order kept
    table = re.search(r'id="table-A".*?</table>', res.stdout, re.S).group(0)
    assert re.findall(r'data-run="(r-[0-9a-f]+)"', table)[:2] == [filled.ids["b"], filled.ids["a"]]

    shot = tmp_path / "leaderboard.png"
    res = _run(exe, tmp_path / "p2", f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
