"""Issue 13's classes against the real harness (run on the CPU, see cpu_harness.py):
a candidate that changes what the reference or the checker runs on, or that behaves
differently once it is being timed, must not come out `correct`."""

import pytest

from tests.harness import cpu_harness as ch

pytestmark = pytest.mark.timeout(120)

PREAMBLE = '''
import sys, gc, os, types
import torch
import torch.nn as nn
'''
HONEST_CLASS = '''
class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.tanh(x) * self.scale + x
'''


def run(tmp_path, monkeypatch, body: str, forward: str | None = None) -> dict:
    ch.install(monkeypatch)
    cls = HONEST_CLASS if forward is None else HONEST_CLASS.split("    def forward")[0] + forward
    return ch.evaluate(tmp_path, PREAMBLE + body + cls)


def verdict(out: dict) -> tuple[str, str]:
    return out["verdict"], out["error"]


def test_honest_candidate_is_correct(tmp_path, monkeypatch):
    out = run(tmp_path, monkeypatch, "")
    assert verdict(out) == ("correct", "none"), out.get("message")
    t = out["timing"]
    assert t["rechecked_outputs"] >= 15 and out["reference_before_load"]["samples"] >= 10
    assert "reference_drift" in t


# -- class 1: shared global state -------------------------------------------------------
@pytest.mark.parametrize("body,needle", [
    # a namespace write the static screen's assignment rule does not see
    ('_t = torch.tanh\nvars(torch)["tanh"] = lambda x: _t(x.double()).float()\n', "torch.tanh was replaced"),
    ("_ci = nn.Module._call_impl\ntype.__setattr__(nn.Module, '_call_impl', lambda self, *a, **k: _ci(self, *a, **k))\n",
     "Module._call_impl was replaced"),
    ("def _slow(input, inplace=False):\n    return input\ntorch.nn.functional.silu.__code__ = _slow.__code__\n",
     "the code of torch.nn.functional.silu was replaced"),
    ("torch.Tensor.__mul__ = lambda a, b: torch.mul(a, b)\n", "Tensor.__mul__ was added"),
    ('sys.modules["ks_task"].N = 64\n', "ks_task.N changed"),
    ('os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":0:0"\n', "the environment changed"),
])
def test_changing_what_the_reference_runs_on_is_tampering(tmp_path, monkeypatch, body, needle):
    out = run(tmp_path, monkeypatch, body)
    assert verdict(out) == ("rejected", "tampering"), out.get("message")
    assert needle in out["message"]


def test_a_global_mode_is_tampering(tmp_path, monkeypatch):
    body = ("from torch.overrides import TorchFunctionMode\n"
            "class _Spy(TorchFunctionMode):\n"
            "    def __torch_function__(self, f, types, args=(), kwargs=None):\n"
            "        return f(*args, **(kwargs or {}))\n"
            "_Spy().__enter__()\n")
    out = run(tmp_path, monkeypatch, body)
    assert verdict(out) == ("rejected", "tampering") and "mode stack" in out["message"]


def test_the_reference_model_is_watched(tmp_path, monkeypatch):
    body = ("def _zero_ref():\n"
            "    for o in gc.get_objects():\n"
            "        if type(o).__name__ == 'Model' and type(o).__module__ == 'ks_task':\n"
            "            o.scale = 1.5 * 1.0000001\n")
    fwd = ("    def forward(self, x):\n"
           "        _zero_ref()\n"
           "        return torch.tanh(x) * self.scale + x\n")
    out = run(tmp_path, monkeypatch, body, fwd)
    assert verdict(out) == ("rejected", "tampering") and "reference model" in out["message"]


def test_degenerate_inputs_are_unreachable(tmp_path, monkeypatch):
    """torch.randn patched at import to return zeros: the checks' inputs were drawn before
    the import, so a candidate counting on zeros is wrong (and the patch is caught)."""
    body = ('_zeros = torch.zeros\nvars(torch)["randn"] = lambda *s, **k: _zeros(*s, **k)\n')
    fwd = "    def forward(self, x):\n        return torch.zeros_like(x)\n"
    out = run(tmp_path, monkeypatch, body, fwd)
    assert out["verdict"] in ("incorrect", "rejected") and out["error"] in ("mismatch", "tampering")


# -- class 3: checker state -------------------------------------------------------------
def test_loosened_tolerance_is_caught(tmp_path, monkeypatch):
    body = ("_chk = sys.modules['kernelsmith.harness.check']\n"
            "_chk.DEFAULT_TOL[torch.float32] = (1.0, 1.0)\n")
    fwd = "    def forward(self, x):\n        return (torch.tanh(x) * self.scale + x) * 1.01\n"
    out = run(tmp_path, monkeypatch, body, fwd)
    assert out["verdict"] in ("incorrect", "rejected") and out["error"] in ("mismatch", "tampering")


def test_replaced_checker_function_is_tampering(tmp_path, monkeypatch):
    body = ("_chk = sys.modules['kernelsmith.harness.check']\n"
            "_chk.compare = lambda *a, **k: None\n"
            "_chk.fast_close = lambda *a, **k: True\n")
    fwd = "    def forward(self, x):\n        return x * 0 + 1\n"
    out = run(tmp_path, monkeypatch, body, fwd)
    assert verdict(out) == ("rejected", "tampering") and "check.compare" in out["message"]


def test_settings_changed_through_frames_are_tampering(tmp_path, monkeypatch):
    body = ("import dataclasses\n"
            "def _loosen():\n"
            "    f = sys._getframe()\n"
            "    while f is not None:\n"
            "        ev = f.f_locals.get('self')\n"
            "        if type(ev).__name__ == 'Evaluation':\n"
            "            ev.settings = dataclasses.replace(ev.settings, atol=1.0, rtol=1.0)\n"
            "            return\n"
            "        f = f.f_back\n")
    fwd = ("    def forward(self, x):\n"
           "        _loosen()\n"
           "        return (torch.tanh(x) * self.scale + x) * 1.01\n")
    out = run(tmp_path, monkeypatch, body, fwd)
    assert verdict(out) == ("rejected", "tampering") and "settings" in out["message"]


# -- class 2: timed calls checked as deeply as checked ones ---------------------------
CHECKED_CALLS = 3 + 1 + 3  # trials, the determinism re-run, the sparse-update calls


@pytest.mark.parametrize("cheat,errors", [
    # once past the checks: hand back the previous output, unwritten
    ("        if self.calls > %d:\n            return self.last\n" % CHECKED_CALLS, ("nan", "timed_mismatch")),
    # ... or memory never written in this call
    ("        if self.calls > %d:\n            return torch.empty_like(x)\n" % CHECKED_CALLS, ("nan", "timed_mismatch")),
    # ... or the input itself
    ("        if self.calls > %d:\n            return x\n" % CHECKED_CALLS, ("aliasing",)),
])
def test_timed_calls_must_do_the_work(tmp_path, monkeypatch, cheat, errors):
    fwd = ("    def forward(self, x):\n"
           "        self.calls += 1\n" + cheat +
           "        self.last = torch.tanh(x) * self.scale + x\n"
           "        return self.last\n")
    out = run(tmp_path, monkeypatch, "", fwd)
    assert out["verdict"] == "incorrect" and out["error"] in errors, out.get("message")


def test_a_patch_made_while_timing_is_caught(tmp_path, monkeypatch):
    """The reference slowed only once timing has started (past the checks): the
    verification at random rounds and at the end sees it."""
    body = "_t = torch.tanh\n_slow = lambda x: _t(x.double()).float()\n"
    fwd = ("    def forward(self, x):\n"
           "        self.calls += 1\n"
           "        if self.calls == %d:\n"
           "            vars(torch)['tanh'] = _slow\n"
           "        return _t(x) * self.scale + x\n" % (CHECKED_CALLS + 4))
    out = run(tmp_path, monkeypatch, body, fwd)
    assert verdict(out) == ("rejected", "tampering") and "torch.tanh" in out["message"]


def test_a_global_module_hook_is_tampering(tmp_path, monkeypatch):
    body = "torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)\n"
    out = run(tmp_path, monkeypatch, body)
    assert verdict(out) == ("rejected", "tampering") and "global hooks" in out["message"]


def test_an_output_never_written_gets_no_correct_stale_result(tmp_path, monkeypatch):
    """12_empty_stale's trick, which passed trial 1 on the H200 before every harness-side
    reference result (the FLOP count's included) was poisoned before being freed."""
    fwd = "    def forward(self, x):\n        return torch.empty_like(x)\n"
    out = run(tmp_path, monkeypatch, "", fwd)
    assert out["verdict"] == "incorrect" and out["error"] in ("nan", "mismatch"), out.get("message")
    assert out["message"].startswith("trial 1")


def test_a_reference_returning_its_weights_is_not_poisoned(tmp_path, monkeypatch):
    task = ch.TASK.replace("return torch.tanh(x) * self.scale + x",
                           "return torch.tanh(x) * self.scale + x, self.w").replace(
        "self.scale = scale", "self.scale = scale\n        self.w = nn.Parameter(torch.randn(64))")
    cand = ch.HONEST.replace("return torch.tanh(x) * self.scale + x",
                             "return torch.tanh(x) * self.scale + x, self.w.detach().clone()").replace(
        "self.scale = scale", "self.scale = scale\n        self.w = nn.Parameter(torch.randn(64))")
    ch.install(monkeypatch)
    out = ch.evaluate(tmp_path, cand, task=task)
    assert out["verdict"] == "correct", out.get("message")


# -- class 3: the verifier itself (seal.py) -------------------------------------------
# Each replaces a piece of the verifier so that it approves anything, then cheats where
# that verifier would have looked. Without the seal each of these came out `correct`
# or `incorrect` for the wrong reason.
WRONG = "    def forward(self, x):\n        return x * 0 + 1\n"
BLIND_SURFACE = ("_s = sys.modules['kernelsmith.harness.surface']\n"
                 "_s.Surface.diff = lambda self, limit=8: []\n"
                 "_i = sys.modules['kernelsmith.harness.integrity']\n"
                 "_i.Snapshot.tampered = lambda self: []\n")


@pytest.mark.parametrize("body,needle", [
    # the verifier's methods, looked up on their classes at every call
    ("_e = sys.modules['kernelsmith.harness.evaluate']\n"
     "_e.Evaluation.verify = lambda self, when, deep=False: None\n"
     "_c = sys.modules['kernelsmith.harness.check']\n"
     "_c.compare = lambda *a, **k: None\n", "Evaluation.verify was replaced"),
    (BLIND_SURFACE + "_c = sys.modules['kernelsmith.harness.check']\n_c.compare = lambda *a, **k: None\n",
     "Surface.diff was replaced"),
    # a builtin the checker calls, and a module global shadowing one
    ("import builtins\nbuiltins.all = lambda it: True\n_c = sys.modules['kernelsmith.harness.check']\n"
     "_c.compare = lambda *a, **k: None\n", "builtins.all was replaced"),
    ("sys.modules['kernelsmith.harness.check'].any = lambda it: False\n", "kernelsmith.harness.check.any was added"),
    # the code object of a function, in place
    ("def _none(*a, **k):\n    return None\nsys.modules['kernelsmith.harness.check'].compare.__code__ = _none.__code__\n",
     "the code of compare was replaced"),
    # the seal's own check
    ("def _none(*a, **k):\n    return None\n"
     "sys.modules['kernelsmith.harness.seal'].check.__code__ = _none.__code__\n"
     "sys.modules['kernelsmith.harness.check'].compare.__code__ = _none.__code__\n", "replaced the verifier's seal"),
])
def test_a_blinded_verifier_is_tampering(tmp_path, monkeypatch, body, needle):
    out = run(tmp_path, monkeypatch, body, WRONG)
    assert verdict(out) == ("rejected", "tampering"), out.get("message")
    assert needle in out["message"], out["message"]


def test_a_fake_timing_stage_is_tampering(tmp_path, monkeypatch):
    """timed.run replaced once the checks are past: the fake would report any speed."""
    body = ("def _blind():\n" + "".join("    " + line + "\n" for line in BLIND_SURFACE.splitlines()) +
            "    _t = sys.modules['kernelsmith.harness.timed']\n"
            "    _t.run = lambda ev, *a, **k: {'candidate_ms': 1e-3, 'reference_ms': 1.0, 'speedup': 1000.0}\n")
    fwd = ("    def forward(self, x):\n"
           "        self.calls += 1\n"
           "        if self.calls == %d:\n"
           "            _blind()\n"
           "        return torch.tanh(x) * self.scale + x\n" % CHECKED_CALLS)
    out = run(tmp_path, monkeypatch, body, fwd)
    assert verdict(out) == ("rejected", "tampering") and "timed.run was replaced" in out["message"], out
    assert "timing" not in out


def test_a_forged_stop_is_not_a_verdict(tmp_path, monkeypatch):
    """The harness's own Stop raised from forward while timing: 'correct' comes only from
    the end of the evaluation."""
    body = "_Stop = sys.modules['kernelsmith.harness.stops'].Stop\n"
    fwd = ("    def forward(self, x):\n"
           "        self.calls += 1\n"
           "        if self.calls > %d:\n"
           "            raise _Stop('correct', 'none', '')\n"
           "        return torch.tanh(x) * self.scale + x\n" % (CHECKED_CALLS + 2))
    out = run(tmp_path, monkeypatch, body, fwd)
    assert verdict(out) == ("rejected", "tampering"), out.get("message")


@pytest.mark.parametrize("hook,needle", [
    ("sys.settrace(lambda *a: None)", "a trace function changed"),
    ("sys.setprofile(lambda *a: None)", "a profile function changed"),
    ("gc.callbacks.append(lambda *a: None)", "gc callbacks changed"),
    ("import signal\nsignal.signal(signal.SIGUSR2, lambda *a: None)", "signal handlers changed"),
])
def test_an_interpreter_hook_is_tampering(tmp_path, monkeypatch, hook, needle):
    """Hooks run candidate code inside the verifier (between a check and its use)."""
    out = run(tmp_path, monkeypatch, hook + "\n")
    assert verdict(out) == ("rejected", "tampering") and needle in out["message"], out.get("message")


def test_a_name_shadowing_a_builtin_in_torch_is_tampering(tmp_path, monkeypatch):
    """Added, not replaced: torch.nn.functional's own code would find it before the builtin."""
    out = run(tmp_path, monkeypatch, "torch.nn.functional.isinstance = lambda *a: False\n")
    assert verdict(out) == ("rejected", "tampering"), out.get("message")
    assert "torch.nn.functional.isinstance was added, shadowing the builtin" in out["message"]


def test_a_lazily_compiled_library_regex_is_not_tampering(tmp_path, monkeypatch):
    """pkgutil compiles its name pattern on first use (None before): seen as a false
    positive when a candidate's import path called pkgutil.resolve_name."""
    import pkgutil

    monkeypatch.setattr(pkgutil, "_NAME_PATTERN", None)
    out = run(tmp_path, monkeypatch, "import pkgutil\npkgutil.resolve_name('os.path:join')\n")
    assert verdict(out) == ("correct", "none"), out.get("message")


def test_tempfiles_lazily_made_name_sequence_is_not_tampering(tmp_path, monkeypatch):
    """tempfile creates its name sequence on first use (None before): seen on the H200 as
    a false positive when Triton's first compile made a temporary directory."""
    import tempfile as tf

    monkeypatch.setattr(tf, "_name_sequence", None)
    out = run(tmp_path, monkeypatch, "import tempfile\ntempfile.mkdtemp()\n")
    assert verdict(out) == ("correct", "none"), out.get("message")


def test_a_lazy_global_set_to_anything_else_is_tampering(tmp_path, monkeypatch):
    """Only the library's own class counts as its lazy instance: a candidate's object in
    that slot is a replacement."""
    import tempfile as tf

    monkeypatch.setattr(tf, "_name_sequence", None)
    out = run(tmp_path, monkeypatch, "import tempfile\ntempfile._name_sequence = iter(['x'] * 100)\n")
    assert verdict(out) == ("rejected", "tampering") and "tempfile._name_sequence was replaced" in out["message"]


def test_settings_written_in_place_are_tampering(tmp_path, monkeypatch):
    """The frozen dataclass written in place (object.__setattr__): the settings are
    compared by value, not as an object with itself (hostile entries 98, 99)."""
    body = ("def _loosen():\n"
            "    f = sys._getframe()\n"
            "    while f is not None:\n"
            "        ev = f.f_locals.get('self')\n"
            "        if type(ev).__name__ == 'Evaluation':\n"
            "            object.__setattr__(ev.settings, 'atol', 1.0)\n"
            "            object.__setattr__(ev.settings, 'rtol', 1.0)\n"
            "            return\n"
            "        f = f.f_back\n")
    fwd = ("    def forward(self, x):\n"
           "        _loosen()\n"
           "        return (torch.tanh(x) * self.scale + x) * 1.01\n")
    out = run(tmp_path, monkeypatch, body, fwd)
    assert verdict(out) == ("rejected", "tampering") and "settings" in out["message"], out.get("message")


def test_reference_slowed_needs_the_whole_interval_past_the_bound():
    """A reference slowed in every round is caught; a few slow rounds (host jitter that
    moved the median) are not a verdict against the candidate."""
    from types import SimpleNamespace

    from kernelsmith.harness import timed
    from kernelsmith.harness.stops import Stop

    stage = object.__new__(timed._Timed)
    stage.prep, stage.limits = SimpleNamespace(pristine={"median_ms": 1.0}), timed.Limits()
    with pytest.raises(Stop) as stop:
        stage._reference_checks({}, 2.0, 1.9)
    assert stop.value.error == "reference_slowed"
    res = {}
    stage._reference_checks(res, 1.4, 1.1)
    assert res["reference_drift"] == pytest.approx(1.4)
