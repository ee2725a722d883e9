"""Each job's outcome says where its seconds went: set-up, the job, exit (the server's clock)."""

import os
import tempfile

from kernelsmith.sandbox.base import ServerSpec
from kernelsmith.sandbox.local import LocalSandbox


def test_a_jobs_outcome_carries_its_timeline():
    out_dir = tempfile.mkdtemp(prefix="ks-timeline-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
    os.chmod(out_dir, 0o777)
    srv = LocalSandbox().start(ServerSpec(role="cpu", gpu=None, arch="9.0"))
    try:
        r = srv.submit("selfcheck", {"out": out_dir}, timeout=120, writable=[out_dir]).result()
    finally:
        srv.close()
    assert r.status == "ok", r.result
    t = r.timeline
    assert set(t) == {"setup", "job", "exit", "total"}, t
    assert all(v >= 0 for v in t.values()), t
    assert t["setup"] + t["job"] + t["exit"] <= t["total"] + 0.05, t
