"""From a model's reply to a candidate file: fenced code, bare code, or SEARCH/REPLACE edits.

Neither function raises on bad input: a reply without usable code gives (None, message),
and the message is written to be fed back to the model as a format error.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

MAX_CODE_CHARS = 256_000
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n`]*$")
_MODELNEW = re.compile(r"^[ \t]*class[ \t]+ModelNew\b|^[ \t]*ModelNew[ \t]*=", re.M)
_NOT_PYTHON = {"cuda", "cu", "cpp", "c++", "c", "cc", "h", "hpp", "cuh", "bash", "sh", "shell", "console", "json",
               "yaml", "toml", "diff", "patch", "text", "txt", "output", "log", "markdown", "md"}
_THINK_END = re.compile(r"</think(?:ing)?>", re.I)
_CODE_START = re.compile(r"^(?:import |from \S+ import |class |def |@|#|\"\"\"|'''|[A-Za-z_][\w.]*\s*=)")

FORMAT_HELP = ("reply with one complete Python file in a single ```python block that imports what it needs, "
               "builds its CUDA kernels (load_inline or cupy.RawKernel) and defines class ModelNew(nn.Module) "
               "with the same __init__ and forward signature as Model")


@dataclass
class Block:
    lang: str
    code: str
    closed: bool


def code_blocks(text: str) -> list[Block]:
    """Fenced blocks (``` or ~~~, any length >= 3) in order; an unclosed last block runs to the end."""
    blocks: list[Block] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower().lstrip("{.").rstrip("}")
        body, j = [], i + 1
        closing = re.compile(rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j])
            j += 1
        blocks.append(Block(lang, "\n".join(body), j < len(lines)))
        i = j + 1
    return blocks


def _answer_part(text: str) -> str:
    """Drop a reasoning preamble (<think>...</think>) whose drafts would confuse extraction."""
    ends = list(_THINK_END.finditer(text))
    if ends:
        rest = text[ends[-1].end():]
        if _MODELNEW.search(rest):
            return rest
    return text


def _parse_error(code: str) -> str | None:
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"syntax error at line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"cannot parse ({type(exc).__name__})"
    return None


def _finish(code: str) -> tuple[str | None, str]:
    code = code.replace("\r\n", "\n").strip("\n")
    if len(code) > MAX_CODE_CHARS:
        return None, (f"the code is {len(code) // 1000} KB; a candidate file must stay under "
                      f"{MAX_CODE_CHARS // 1000} KB: write compact kernels, no embedded data")
    return code.rstrip() + "\n", ""


def _bare_code(text: str) -> str | None:
    """Unfenced code with prose around it: from the first code-looking line, trimming trailing prose."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = next((i for i, ln in enumerate(lines) if _CODE_START.match(ln)), None)
    if start is None:
        return None
    end = len(lines)
    for _ in range(40):  # drop trailing prose lines until it parses
        code = "\n".join(lines[start:end])
        if _parse_error(code) is None:
            return code if _MODELNEW.search(code) else None
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        end -= 1
        if end <= start:
            break
    return None


def extract_code(text: str | None) -> tuple[str | None, str]:
    """(code, "") for a usable candidate file in the reply, else (None, a format error to feed back)."""
    if not text or not text.strip():
        return None, f"the reply was empty; {FORMAT_HELP}"
    text = _answer_part(text.replace("\r\n", "\n"))
    blocks = code_blocks(text)
    py = [b for b in blocks if b.lang not in _NOT_PYTHON]
    with_model = [b for b in py if _MODELNEW.search(b.code)] or [
        b for b in blocks if _MODELNEW.search(b.code) and b.lang not in ("cuda", "cu", "cpp", "c++", "c")]
    if with_model:
        errors = []
        for b in reversed(with_model):  # the last complete file wins
            err = _parse_error(b.code)
            if err is None:
                return _finish(b.code)
            errors.append((b, err))
        b, err = errors[0]
        cut = "" if b.closed else " (the block is not closed: the reply was probably cut off by the token limit)"
        return None, f"the code block defining ModelNew is not valid Python: {err}{cut}; {FORMAT_HELP}"
    if not blocks and _MODELNEW.search(text):
        bare = _bare_code(text)
        if bare is not None:
            return _finish(bare)
        err = _parse_error(text) or "it is mixed with prose"
        return None, f"found `class ModelNew` but no parsable code ({err}); put the code in a ```python block; {FORMAT_HELP}"
    what = "code blocks, but none defines it" if blocks else "no code block"
    return None, f"no `class ModelNew` found in the reply (it has {what}); {FORMAT_HELP}"


# --- SEARCH/REPLACE edits -------------------------------------------------------------
_SEARCH = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH\b.*$")
_DIVIDER = re.compile(r"^[ \t]*={5,9}[ \t]*$")
_REPLACE = re.compile(r"^[ \t]*>{5,9}[ \t]*REPLACE\b.*$")


def parse_diff(text: str) -> tuple[list[tuple[str, str]], str]:
    """The (search, replace) pairs in order, and an error for a malformed block."""
    edits: list[tuple[str, str]] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        k = len(edits) + 1
        j = i + 1
        while j < len(lines) and not _DIVIDER.match(lines[j]):
            if _SEARCH.match(lines[j]) or _REPLACE.match(lines[j]):
                return edits, f"SEARCH/REPLACE block {k} has no ======= line between its two parts"
            j += 1
        m = j + 1
        while m < len(lines) and not _REPLACE.match(lines[m]):
            m += 1
        if j >= len(lines) or m >= len(lines):
            return edits, f"SEARCH/REPLACE block {k} is not terminated by >>>>>>> REPLACE (was the reply cut off?)"
        edits.append(("\n".join(lines[i + 1:j]), "\n".join(lines[j + 1:m])))
        i = m + 1
    return edits, ""


def _find_loose(code: str, search: str) -> tuple[int, int] | None:
    """Where `search` occurs ignoring trailing whitespace on each line: (start, end) offsets."""
    want = [ln.rstrip() for ln in search.split("\n")]
    lines = code.split("\n")
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)
    for s in range(len(lines) - len(want) + 1):
        if all(lines[s + t].rstrip() == want[t] for t in range(len(want))):
            return offsets[s], offsets[s + len(want)] - 1
    return None


def apply_diff(parent_code: str, text: str | None) -> tuple[str | None, str]:
    """Apply the reply's SEARCH/REPLACE blocks to the parent; a reply with a full file instead is taken whole."""
    if not text or not text.strip():
        return None, "the reply was empty; reply with SEARCH/REPLACE blocks (or one complete ```python file)"
    text = _answer_part(text)
    edits, err = parse_diff(text)
    if err:
        return None, f"{err}; each edit is <<<<<<< SEARCH, the exact current lines, =======, the new lines, >>>>>>> REPLACE"
    if not edits:
        code, err = extract_code(text)
        if code is not None:
            return code, ""
        return None, ("no SEARCH/REPLACE block and no complete file in the reply; reply with edits of the form "
                      "<<<<<<< SEARCH / exact current lines / ======= / new lines / >>>>>>> REPLACE")
    code = parent_code.replace("\r\n", "\n")
    for k, (search, repl) in enumerate(edits, 1):
        if not search.strip():
            return None, f"the SEARCH part of edit {k} is empty; quote the exact lines to replace"
        pos = code.find(search)
        if pos >= 0:
            code = code[:pos] + repl + code[pos + len(search):]
            continue
        span = _find_loose(code, search)
        if span is None:
            first = next((ln.strip() for ln in search.split("\n") if ln.strip()), "")[:80]
            return None, (f"the SEARCH part of edit {k} of {len(edits)} (starting `{first}`) does not occur verbatim "
                          "in the current code; copy the lines exactly, including indentation, or reply with the "
                          "complete file")
        code = code[:span[0]] + repl + code[span[1]:]
    err = _parse_error(code)
    if err:
        return None, f"after applying the edits the file is not valid Python ({err}); check the REPLACE parts"
    if not _MODELNEW.search(code):
        return None, "after applying the edits the file no longer defines class ModelNew"
    return _finish(code)


def completion_text(c: Any) -> str | None:
    """A completion as text: a string, or the content of the last assistant message of a chat."""
    if c is None or isinstance(c, str):
        return c
    if isinstance(c, dict):
        return c.get("content") if isinstance(c.get("content"), str) else None
    if isinstance(c, (list, tuple)):
        msgs = [m for m in c if isinstance(m, dict)]
        asst = [m for m in msgs if m.get("role") == "assistant"] or msgs
        if asst:
            content = asst[-1].get("content")
            if isinstance(content, list):  # content parts [{"type": "text", "text": ...}]
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else None
    return None
