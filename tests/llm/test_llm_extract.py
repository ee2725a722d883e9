"""Getting a candidate file out of a reply: fences, prose, several blocks, edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelsmith.llm.extract import apply_diff, code_blocks, extract_code, parse_diff

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/solutions/level1_001_leaky_relu_scale"
CODE = (FIXTURE / "correct_cupy.py").read_text()
SMALL = "import torch\nimport torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return x\n"


def test_python_fence_with_prose():
    code, err = extract_code(f"Plan: fuse everything.\n\n```python\n{CODE}```\n\nThis should be 2x faster.")
    assert err == "" and code == CODE.rstrip() + "\n"


@pytest.mark.parametrize("open_, close", [("```py", "```"), ("```", "```"), ("~~~python", "~~~"),
                                          ("````python", "````"), ("```Python3", "```"), ("```{python}", "```")])
def test_fence_variants(open_, close):
    code, err = extract_code(f"Sure:\n{open_}\n{SMALL}{close}\nDone.")
    assert code == SMALL and err == ""


def test_crlf_reply():
    code, err = extract_code(("```python\n" + SMALL + "```\n").replace("\n", "\r\n"))
    assert code == SMALL


def test_several_blocks_pick_the_last_model_new():
    draft = SMALL.replace("return x", "return x  # draft")
    cuda = "```cuda\n__global__ void k(float* y) { /* class ModelNew */ }\n```"
    usage = "```python\nm = ModelNew()\nprint(m(x))\n```"
    text = f"Draft:\n```python\n{draft}```\n{cuda}\nFinal:\n```python\n{SMALL}```\nUsage:\n{usage}"
    code, err = extract_code(text)
    assert code == SMALL


def test_last_block_broken_earlier_one_parses():
    broken = SMALL + "    def oops(:\n"
    code, err = extract_code(f"```python\n{SMALL}```\nbetter:\n```python\n{broken}```")
    assert code == SMALL


def test_no_fences_whole_text_or_with_prose():
    assert extract_code(SMALL) == (SMALL, "")
    code, err = extract_code("Here is the code:\n\n" + SMALL + "\nThat is all, it works well.\n")
    assert code == SMALL, err


def test_missing_model_new_is_a_format_error():
    code, err = extract_code("```python\nimport torch\nclass Model(torch.nn.Module):\n    pass\n```")
    assert code is None and "no `class ModelNew` found in the reply" in err and "```python" in err
    code, err = extract_code("I cannot do that.")
    assert code is None and "no code block" in err
    assert extract_code("")[0] is None and "empty" in extract_code("  ")[1]
    assert extract_code(None)[0] is None


def test_truncated_reply_says_so():
    code, err = extract_code("```python\n" + SMALL + "    def forward2(self, x):\n        return (x +")
    assert code is None and "not valid Python" in err and "cut off" in err


def test_think_block_drafts_are_ignored():
    draft = SMALL.replace("return x", "return 2 * x")
    code, _ = extract_code(f"<think>\n```python\n{draft}```\nhmm no\n</think>\nFinal:\n```python\n{SMALL}```")
    assert code == SMALL


def test_model_new_by_assignment():
    code, err = extract_code("```python\nimport torch\nclass Fast(torch.nn.Module):\n    pass\nModelNew = Fast\n```")
    assert code is not None and err == ""


def test_code_blocks_unclosed():
    blocks = code_blocks("a\n```cuda\nx\n```\n```python\ny")
    assert [(b.lang, b.code, b.closed) for b in blocks] == [("cuda", "x", True), ("python", "y", False)]


# --- SEARCH/REPLACE ---------------------------------------------------------------------
def edit(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def test_apply_diff_blocks():
    text = ("Use 512 threads and a bigger grid.\n```python\n" + edit("_THREADS = 256", "_THREADS = 512") + "\n"
            + edit("        blocks = min((n + _THREADS - 1) // _THREADS, 1 << 20)",
                   "        blocks = min((n + _THREADS - 1) // _THREADS, 1 << 16)") + "\n```")
    code, err = apply_diff(CODE, text)
    assert err == "" and "_THREADS = 512" in code and "1 << 16)" in code and "_THREADS = 256" not in code


def test_apply_diff_search_not_found():
    code, err = apply_diff(CODE, edit("_THREADS = 1024", "_THREADS = 64"))
    assert code is None and "edit 1 of 1" in err and "does not occur verbatim" in err and "_THREADS = 1024" in err


def test_apply_diff_tolerates_trailing_whitespace():
    code, err = apply_diff(CODE, edit("_THREADS = 256   ", "_THREADS = 128"))
    assert err == "" and "_THREADS = 128" in code


def test_apply_diff_malformed_and_breaking_edits():
    code, err = apply_diff(CODE, "<<<<<<< SEARCH\n_THREADS = 256\n=======\n_THREADS = 512\n")
    assert code is None and "not terminated" in err
    code, err = apply_diff(CODE, edit("class ModelNew(nn.Module):", "class ModelNew(nn.Module:"))
    assert code is None and "not valid Python" in err
    code, err = apply_diff(CODE, edit("class ModelNew(nn.Module):", "class Other(nn.Module):"))
    assert code is None and "no longer defines class ModelNew" in err


def test_apply_diff_accepts_a_full_file_instead():
    code, err = apply_diff(CODE, f"Rewrote it:\n```python\n{SMALL}```")
    assert code == SMALL and err == ""
    code, err = apply_diff(CODE, "no idea")
    assert code is None and "no SEARCH/REPLACE block" in err


def test_parse_diff_empty_replace():
    edits, err = parse_diff(edit("a\nb", ""))
    assert edits == [("a\nb", "")] and err == ""
