"""Issue 13 class 1 in both sandboxes: the surface the fork server captured before forking
is what the job's evaluation verifies, and a candidate's namespace patch is caught there."""


import os
import shutil
from pathlib import Path

CPU_HARNESS = Path(__file__).parents[1] / "harness" / "cpu_harness.py"


def test_surface_checks_run_in_the_sandbox(harness):
    dest = os.path.join(harness.shared, "cpu_harness.py")  # the Docker sandbox mounts no tests/
    shutil.copyfile(CPU_HARNESS, dest)
    os.chmod(dest, 0o644)
    out = harness.run("trust_eval", timeout=120)
    assert out.status == "ok", out
    r = out.result["returned"]
    assert r["prefork"] is True  # captured in the fork server, inherited by the job
    assert r["honest"][:2] == ["correct", "none"], r["honest"]
    assert r["patched_tanh"][:2] == ["rejected", "tampering"] and "torch.tanh was replaced" in r["patched_tanh"][2]
