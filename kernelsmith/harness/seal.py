"""A seal on the verifier itself.

The surface (surface.py) catches a candidate that changes what the reference and the
checker run on, but only if the code doing the comparing is still the harness's own:
a candidate that replaces `Surface.diff`, `Evaluation.verify`, a `timed` function, a
builtin the checker calls (`all`, `len`) or a name added to a harness module's globals
that shadows one, gets a verifier that approves anything. The seal closes that loop.

`capture()` runs before the candidate is imported and records, for the harness's own
modules and the modules on the result's way out (json, os, sys, gc, builtins, ...):
every module dict's values, every harness class's dict, every function's code,
defaults and closure, and the interpreter's hooks (trace and profile functions, gc
callbacks, signal handlers). `check` compares them by identity. It reads no module
globals and no builtins at call time: everything it uses is bound as a default
argument when this module is imported, and the caller holds `check`, its code and its
defaults in its own frame's locals (evaluate.py), verifying them with `is` before each
call. A candidate would need the caller's frame (sys._getframe, gc, ctypes: refused by
the static screen) to undo that. docs/guarantees.md lists this assumption.
"""

from __future__ import annotations

import builtins
import gc
import sys
import types

import _signal

# Beside kernelsmith's own: what a result passes through after the last check.
_ALSO = ("builtins", "sys", "gc", "os", "posix", "json", "json.encoder", "json.decoder", "_json", "operator",
         "threading", "time", "marshal", "traceback", "types", "_signal", "signal")


def _ours(name: str) -> bool:
    return name.startswith("kernelsmith.") or name in _ALSO


def _hooks() -> tuple:
    handlers = tuple(_signal.getsignal(s) for s in range(1, _signal.NSIG) if _valid(s))
    mon = getattr(sys, "monitoring", None)  # Python >= 3.12
    tools = tuple(mon.get_tool(i) for i in range(6)) if mon is not None else ()
    return sys.gettrace(), sys.getprofile(), tuple(gc.callbacks), handlers, tools


def _valid(sig: int) -> bool:
    try:
        _signal.getsignal(sig)
        return True
    except (ValueError, OSError):
        return False


def capture() -> tuple:
    """(check, its code, its defaults, the record): the caller keeps all four in locals."""
    dicts, classes, funcs, seen = [], [], [], set()

    def add_func(f) -> None:
        if type(f) is types.FunctionType and id(f) not in seen:
            seen.add(id(f))
            cells = f.__closure__ or ()
            full = all(_filled(c) for c in cells)
            funcs.append((f, f.__code__, f.__defaults__, f.__kwdefaults__,
                          tuple(c.cell_contents for c in cells) if full else ()))

    for name in sorted(n for n in list(sys.modules) if _ours(n)):
        d = getattr(sys.modules[name], "__dict__", None)
        if not isinstance(d, dict):
            continue
        dicts.append((name, d, tuple(d.values())))
        for v in list(d.values()):
            add_func(v)
            if isinstance(v, type) and str(getattr(v, "__module__", "")).startswith("kernelsmith.") \
                    and id(v) not in seen:
                seen.add(id(v))
                cd = v.__dict__
                classes.append((v, tuple(cd.keys()), tuple(cd.values())))
                for m in list(cd.values()):
                    add_func(getattr(m, "__func__", m))
                    for part in ("fget", "fset", "fdel"):
                        add_func(getattr(m, part, None))
    return check, check.__code__, check.__defaults__, (tuple(dicts), tuple(classes), tuple(funcs), _hooks())


def _filled(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def check(rec: tuple, when: str, _len=len, _type=type, _module=types.ModuleType, _hooks=_hooks,
          _builtin=builtins.__dict__, _modules=sys.modules, _Stop=None) -> None:
    """Raise the harness's Stop (tampering) if anything recorded changed. Uses only its
    arguments and defaults: see the module's docstring."""
    dicts, classes, funcs, hooks = rec
    bad = []
    for name, d, vals in dicts:
        n = _len(vals)
        if _len(d) < n:
            bad.append(f"module {name} lost attributes")
            continue
        i = 0
        for k, v in d.items():
            if i < n:
                if v is not vals[i]:
                    bad.append(f"{name}.{k} was replaced")
            elif _type(v) is not _module or (k in _builtin and v is not _modules.get(name + "." + k)):
                bad.append(f"{name}.{k} was added")  # only submodules may appear, not shadows of builtins
            i += 1
    for cls, keys, vals in classes:
        cd = cls.__dict__
        if _len(cd) != _len(vals):
            bad.append(f"class {cls.__qualname__} gained or lost attributes")
            continue
        i = 0
        for k, v in cd.items():
            if k != keys[i] or v is not vals[i]:
                bad.append(f"{cls.__qualname__}.{k} was replaced")
            i += 1
    for f, code, dflt, kw, cells in funcs:
        if f.__code__ is not code or f.__defaults__ is not dflt or f.__kwdefaults__ is not kw:
            bad.append(f"the code of {f.__qualname__} was replaced")
        elif cells:
            i = 0
            for c in f.__closure__:
                if i < _len(cells) and c.cell_contents is not cells[i]:
                    bad.append(f"a closure of {f.__qualname__} was changed")
                i += 1
    now = _hooks()
    for what, old, new in (("a trace function", hooks[0], now[0]), ("a profile function", hooks[1], now[1]),
                           ("gc callbacks", hooks[2], now[2]), ("signal handlers", hooks[3], now[3]),
                           ("sys.monitoring tools", hooks[4], now[4])):
        if old != new:
            bad.append(f"{what} changed")
    if bad:
        raise _Stop("rejected", "tampering", f"while {when} the candidate changed the verifier itself: "
                    + "; ".join(bad[:5]))


def _bind_stop() -> None:
    """Bind the harness's Stop into check's defaults (stops.py imports nothing of ours)."""
    from kernelsmith.harness.stops import Stop

    d = list(check.__defaults__)
    d[-1] = Stop
    check.__defaults__ = tuple(d)


_bind_stop()
