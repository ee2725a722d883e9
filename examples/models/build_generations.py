"""Writes the generations files of the two example models from the kernels in kernels/:
one JSONL row {"key": GROUP_KEY, "code": CANDIDATE} per group (the keys `kernelsmith model`
prints; they follow from each model's code). tests/model checks the files are up to date.

    python3 examples/models/build_generations.py
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

GENERATIONS = {
    "tiny_transformer": {
        "mul+softmax": "scale_softmax.py",
        "ln1": "layernorm_rows.py",
        "ln2": "layernorm_rows.py",
        "act": "gelu.py",
    },
    "small_convnet": {
        "bn+relu": "bn_relu.py",
        "blocks.0.bn1+blocks.0.relu": "bn_relu.py",
        "blocks.1.bn1+blocks.1.relu": "bn_relu.py",
        "blocks.0.bn2+add+blocks.0.relu": "bn_add_relu.py",
        "blocks.1.bn2+add_1+blocks.1.relu+pool": "bn_add_relu_pool.py",
    },
}


def rows(model: str) -> list[dict]:
    return [{"key": key, "code": (HERE / "kernels" / f).read_text()} for key, f in GENERATIONS[model].items()]


def text(model: str) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows(model))


# the scripted model of examples/optimize_api.py: one answer, the fused scale+softmax kernel
API_REPLIES = HERE.parent / "optimize_api_replies.json"


def api_replies() -> str:
    code = (HERE / "kernels" / "scale_softmax.py").read_text()
    return json.dumps([f"One warp per row, the row in registers: read once, written once.\n```python\n{code}```\n"],
                      indent=1) + "\n"


if __name__ == "__main__":
    for model in GENERATIONS:
        out = HERE / f"{model}_generations.jsonl"
        out.write_text(text(model))
        print(f"wrote {out} ({len(GENERATIONS[model])} rows)")
    API_REPLIES.write_text(api_replies())
    print(f"wrote {API_REPLIES}")
