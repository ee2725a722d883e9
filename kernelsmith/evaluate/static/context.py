"""Scan context of the static screen: one walk over the candidate's AST that every rule shares.

`Ctx` records each node with its enclosing function/lambda/class, resolves import aliases
(`F.gelu` -> `torch.nn.functional.gelu`, also through `mm = torch.mm` and `self.act = F.gelu`),
decides which code runs on inputs (forward and what it calls) versus setup (__init__,
get_inputs, module level), collects the CUDA/C++ source strings, and gathers the findings that
come straight from the vocabulary tables into `found`. Rule-specific checks live in
rules.py.
"""

from __future__ import annotations

import ast
import re
from typing import Iterator

from kernelsmith.evaluate.static.vocab import (
    ATTR_RULES, BUILDERS, C_COMMENT, C_STRING, COMPUTE, CREATORS, CUDA_RULES, GLUE, HARNESS_NAME, MAIN_GUARDS,
    NAME_RULES, REF_RULES, TENSOR_METHODS, compute_kind, import_rule_id, op_name,
)


def _blank(m: re.Match) -> str:
    """Replace a match by spaces, keeping its newlines so line numbers stay right."""
    return re.sub(r"[^\n]", " ", m.group(0))


def _strings(node: ast.AST) -> list[ast.AST]:
    return [n for n in ast.walk(node) if isinstance(n, ast.JoinedStr)
            or (isinstance(n, ast.Constant) and isinstance(n.value, str))]


def _text(node: ast.AST) -> str:
    """A string constant's text; an f-string's placeholders read as "0" so the regexes still see the code."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values)
    return node.value


# Standard modules other modules hold as attributes (`torch.os`, `numpy.sys`): reached that
# way they are the same module, so `torch.os.system` is judged as `os.system`.
REEXPORTED = frozenset(("sys", "os", "subprocess", "ctypes", "gc", "builtins", "inspect", "importlib", "threading",
                        "shutil", "socket", "pickle", "marshal", "runpy", "multiprocessing", "traceback", "io"))


def _reexport(dotted: str) -> str:
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        if parts[i] in REEXPORTED and ".".join(parts[:i + 1]) != "torch.multiprocessing":
            return ".".join(parts[i:])
    return dotted


class Ctx:
    """Everything the rules ask about one candidate, computed once (the screen runs on every
    candidate, so each rule must not re-walk the tree)."""

    def __init__(self, tree: ast.Module, task_source: str | None):
        self.task_source = task_source
        self.recs: list[tuple] = []  # (node, innermost def, innermost def-or-lambda, innermost class)
        self.by_type: dict[type, list[tuple]] = {}
        self.parent: dict[ast.AST, ast.AST] = {}
        self._walk(tree)
        self.aliases: dict[str, str] = {}  # local name -> dotted name
        self.self_alias: dict[str, str] = {}  # self.<attr> -> dotted name
        self._res: dict[ast.AST, str | None] | None = None
        self._build_aliases()
        self._res = {}
        self.runtime = self._runtime_functions()
        self.holders = self._holders()
        self.ext_keys, self.factories, self.defs = self._extensions()
        self.docstrings = {id(n.body[0].value) for n, *_ in self.nodes(ast.Module, ast.ClassDef, ast.FunctionDef)
                           if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        self.half_task = bool(task_source and re.search(r"float16|half|bfloat16|bf16", task_source))
        self.cuda = self._cuda_sources()
        self._tnames: dict[ast.AST, set[str]] = {}
        self.found: dict[str, list[tuple[int, str]]] = {}
        self._generic()

    def _walk(self, root):
        stack = [(root, None, None, None)]
        while stack:
            rec = stack.pop()
            node, fn, code, cls = rec
            self.recs.append(rec)
            self.by_type.setdefault(type(node), []).append(rec)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = code = node
            elif isinstance(node, ast.Lambda):
                code = node
            elif isinstance(node, ast.ClassDef):
                cls, fn, code = node, None, None
            children = list(ast.iter_child_nodes(node))
            if isinstance(node, ast.If) and ast.unparse(node.test) in MAIN_GUARDS:  # never runs on import
                children = [node.test, *node.orelse]
            for child in children:
                self.parent[child] = node
            stack.extend((c, fn, code, cls) for c in reversed(children))

    def nodes(self, *types):
        return (rec for t in types for rec in self.by_type.get(t, ()))

    def imports(self) -> Iterator[tuple[ast.AST, str, ast.alias | None]]:
        """(node, dotted name, alias) for every import; alias is None for the module of a `from` import."""
        for n, *_ in self.nodes(ast.Import, ast.ImportFrom):
            mod = "." * getattr(n, "level", 0) + (getattr(n, "module", None) or "")
            if isinstance(n, ast.ImportFrom):
                yield n, mod, None
            for a in n.names:
                yield n, (a.name if isinstance(n, ast.Import) else f"{mod}.{a.name}"), a

    def _build_aliases(self):
        for n, name, a in self.imports():
            if a is None:
                continue
            if isinstance(n, ast.Import):
                self.aliases[a.asname or name.split(".")[0]] = name if a.asname else name.split(".")[0]
            elif a.name == "*":
                self.aliases.update({k: f"{name[:-2]}.{k}" for k in COMPUTE | GLUE})
            else:
                self.aliases[a.asname or a.name] = name
        for _ in range(2):  # `mm = torch.mm`, `self.act = F.gelu`, `f = getattr(torch, "tanh")`
            for n, *_ in self.nodes(ast.Assign):
                for t in n.targets if (d := self.resolve(n.value)) else ():
                    if isinstance(t, ast.Name):
                        self.aliases[t.id] = d
                    elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        self.self_alias[t.attr] = d

    def resolve(self, node) -> str | None:
        if self._res is None or node not in self._res:
            d = self._resolve(node)
            if self._res is None:
                return d
            self._res[node] = d
        return self._res[node]

    def _resolve(self, node) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return self.self_alias.get(node.attr)
            base = self.resolve(node.value)
            return _reexport(f"{base}.{node.attr}") if base else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            base = self.resolve(node.args[0])
            return f"{base}.{node.args[1].value}" if base else None
        return None

    def _runtime_functions(self) -> set[ast.AST]:
        """Code that can run on inputs: every def/lambda except __init__, get_inputs, an unused reference
        `Model`, and helpers only ever *called* from such setup code or from module level."""
        refs: dict[str, list[tuple]] = {}
        for n, fn, _, cls in self.nodes(ast.Name, ast.Attribute):
            if not (cls and cls.name == "Model"):
                p = self.parent.get(n)
                refs.setdefault(getattr(n, "id", None) or n.attr, []).append((fn, isinstance(p, ast.Call) and p.func is n))
        self.model_used = "Model" in refs
        funcs = [(f, cls) for f, _, _, cls in self.nodes(ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)]
        setup = {f for f, cls in funcs if getattr(f, "name", "") in ("__init__", "get_inputs", "get_init_inputs")
                 or (cls and cls.name == "Model" and not self.model_used)}
        grew = True
        while grew:
            grew = False
            for f, _ in funcs:
                name, uses = getattr(f, "name", "__"), refs.get(getattr(f, "name", ""))
                if f not in setup and not name.startswith("__") and name != "forward" and uses \
                        and all(call and (owner is None or owner in setup) for owner, call in uses):
                    setup.add(f)
                    grew = True
        return {f for f, _ in funcs if f not in setup}

    def in_runtime(self, code, cls) -> bool:
        if code is None:  # class bodies belong to the model; module level is setup
            return cls is not None and (cls.name != "Model" or self.model_used)
        return code in self.runtime

    def _holders(self) -> set[str]:
        """Names / self attributes bound to torch compute modules or functions (`self.fc = nn.Linear(...)`)."""
        out: set[str] = set()
        for n, *_ in self.nodes(ast.Assign, ast.AnnAssign, ast.For):
            value = n.iter if isinstance(n, ast.For) else n.value
            hit = value is not None and ((self.key(value) in out) if isinstance(n, ast.For) else any(
                compute_kind(self.resolve(s)) == "reject" for s in ast.walk(value)
                if isinstance(s, (ast.Name, ast.Attribute))))
            out.update(k for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if hit and (k := self.key(t)))
        return out

    def _extensions(self) -> tuple[set[str], set[str], set[str]]:
        """Names bound to built extensions (`_ext = load_inline(...)`, `self.ext = _ext`), functions that
        build one, and every def name: their `.softmax(...)` is the candidate's own code, not torch."""
        factories = {fn.name for n, fn, *_ in self.nodes(ast.Call) if fn and self.resolve(n.func) in BUILDERS}
        keys: set[str] = set()
        for n, *_ in [*self.nodes(ast.Assign)] * 2:
            v = n.value
            if self.key(v) in keys or isinstance(v, ast.Call) and (
                    self.resolve(v.func) in BUILDERS or getattr(v.func, "id", None) in factories):
                keys.update(k for t in n.targets if (k := self.key(t)))
        return keys, factories, {f.name for f, *_ in self.nodes(ast.FunctionDef, ast.AsyncFunctionDef)}

    def own_code(self, recv, method: str) -> bool:
        return self.key(recv) in self.ext_keys or getattr(getattr(recv, "func", None), "id", 0) in self.factories \
            or (getattr(recv, "id", None) == "self" and method in self.defs)

    @staticmethod
    def key(node) -> str | None:
        while isinstance(node, ast.Subscript) or (
                isinstance(node, ast.Attribute) and node.attr in ("forward", "__call__", "_call_impl")):
            node = node.value
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return "self." + node.attr
        return None

    def _cuda_sources(self) -> list[tuple[int, str, str, str]]:
        """Strings handed to load_inline/RawKernel (directly or by name), module-level string constants and
        any string that looks like CUDA: (first line, raw minus comments, minus strings, lowercase)."""
        passed, picked = set(), {}
        for n, *_ in self.nodes(ast.Call):
            if self.resolve(n.func) in BUILDERS:
                for arg in [*n.args, *(k.value for k in n.keywords)]:
                    passed.update(s.id for s in ast.walk(arg) if isinstance(s, ast.Name))
                    picked.update((id(s), s) for s in _strings(arg))
        for n, fn, _, _ in self.nodes(ast.Assign, ast.AnnAssign):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if n.value is not None and (fn is None or any(getattr(t, "id", None) in passed for t in targets)):
                picked.update((id(s), s) for s in _strings(n.value))
        for n, *_ in self.nodes(ast.Constant):
            if isinstance(n.value, str) and re.search(r"__global__|#include|extern \"C\"", n.value):
                picked[id(n)] = n
        out = []
        for s in (s for k, s in picked.items() if k not in self.docstrings):
            raw = C_COMMENT.sub(_blank, _text(s)) if "/" in _text(s) else _text(s)
            out.append((s.lineno, raw, C_STRING.sub(_blank, raw) if '"' in raw else raw, raw.lower()))
        return out

    def add(self, rule_id: str, line: int, what: str):
        self.found.setdefault(rule_id, []).append((line, what))

    def _generic(self):
        """Findings from the tables: imports, resolved names, builtins, attributes, constants, CUDA."""
        add = self.add
        for n, name, _ in self.imports():
            if (rid := import_rule_id(name)):
                add(rid, n.lineno, f"import of `{name}`")
        for n, fn, code, cls in self.nodes(ast.Name, ast.Attribute):
            p = self.parent.get(n)
            if not (isinstance(p, ast.Attribute) and p.value is n) and (d := self.resolve(n)):
                for rid, pred in REF_RULES:
                    if pred(d):
                        add(rid, n.lineno, f"`{d}`")
            name = getattr(n, "id", None) or n.attr
            rid = (NAME_RULES if isinstance(n, ast.Name) else ATTR_RULES).get(name)
            if rid and (name == "Model" or name not in self.aliases) and not (cls and cls.name == name == "Model"):
                add(rid, n.lineno, f"`{name}`")
            if HARNESS_NAME.match(name):
                add("harness-tampering", n.lineno, f"`{name}`")
        for n, *_ in self.nodes(ast.Constant, ast.FunctionDef, ast.ClassDef, ast.alias):
            name = n.value if isinstance(n, ast.Constant) else n.name
            if isinstance(name, str) and id(n) not in self.docstrings:
                if name == "Model" and not isinstance(n, ast.ClassDef):
                    add("reference-delegation", n.lineno, "`Model`")
                if HARNESS_NAME.match(name):
                    add("harness-tampering", n.lineno, f"`{name}`")
                if isinstance(n, ast.Constant) and re.search(r"\bpip3? install\b", name):
                    add("system-access", n.lineno, "a `pip install` string")
        self._scan_cuda()
        if self.half_task:
            self.found.pop("precision", None)

    def _scan_cuda(self):
        for rid, rx, needles in CUDA_RULES:
            for line, raw, bare, low in self.cuda:
                if any(k in low for k in needles):
                    text = raw if "#include" in rx.pattern[:9] or rid == "precision" else bare
                    for m in rx.finditer(text):
                        self.add(rid, line + text.count("\n", 0, m.start()), f"`{m.group(0).strip()}` in CUDA/C++ source")

    def tensorish(self, node, fn) -> bool:
        """Is `node` (inside function fn) most likely a tensor? Forward parameters and what torch returns."""
        if isinstance(node, ast.Name):
            return node.id in self._tensor_names(fn)
        if isinstance(node, ast.Subscript):
            return self.tensorish(node.value, fn)
        if isinstance(node, ast.BinOp):
            return self.tensorish(node.left, fn) or self.tensorish(node.right, fn)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if (d := self.resolve(node.func)):
                return d.startswith("torch.") and (d.rpartition(".")[2] in CREATORS or compute_kind(d) is not None)
            return (node.func.attr in TENSOR_METHODS and self.tensorish(node.func.value, fn)) \
                or op_name(node.func.attr) in COMPUTE
        return False

    def _tensor_names(self, fn) -> set[str]:
        if fn is None:
            return set()
        if fn not in self._tnames:
            names = self._tnames[fn] = {a.arg for a in fn.args.args[1:]} if fn.name == "forward" else set()
            assigns = [n for n, f, *_ in self.nodes(ast.Assign) if f is fn]
            for n in assigns + assigns:
                if self.tensorish(n.value, fn):
                    names.update(t.id for t in n.targets if isinstance(t, ast.Name))
        return self._tnames[fn]
