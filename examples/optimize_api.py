"""kernelsmith.optimize on your own module: a runnable example (also a notebook cell).

    python3 examples/optimize_api.py            # on a GPU: search, verify, install, time
    python3 examples/optimize_api.py --dry-run  # on a CPU: capture, write the task, screen and compile
    (--out DIR: where the task, the best kernel and its report go [default: kernelsmith_out/attention_probs])

The model here is scripted (examples/optimize_api_replies.json: one hand-written CuPy
kernel), so no endpoint is needed; pass model="gpt-5.1" (or any OpenAI-compatible model,
see the README) and a larger budget for a real search. The run is recorded in runs.db
like any `kernelsmith optimize` run (`kernelsmith runs show RUN_ID`).
"""

import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import kernelsmith  # noqa: E402

HERE = Path(__file__).resolve().parent


class AttentionProbs(nn.Module):
    """The softmax of attention scores, scaled by 1/sqrt(head width)."""

    def forward(self, scores):
        return (scores * 0.125).softmax(dim=-1)


def main() -> None:
    dry = "--dry-run" in sys.argv
    device = "cpu" if dry else "cuda"
    module = AttentionProbs().eval().to(device)
    scores = torch.randn(8, 8, 256, 256, device=device)
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "kernelsmith_out/attention_probs"
    fast = kernelsmith.optimize(module, [scores], model=f"scripted:{HERE / 'optimize_api_replies.json'}",
                                budget=1, sanitize=False, dry_run=dry, out_dir=out)
    report = fast.kernelsmith
    print("installed:", report["installed"], "| run", report["run_id"], "|", report.get("note", ""))
    if report["installed"]:
        e2e = report["e2e"]
        print(f"task speedup {report['task_speedup']:.3f}x; in this process {e2e['speedup']:.3f}x "
              f"({e2e['eager_ms']:.4f} ms -> {e2e['optimized_ms']:.4f} ms)")
        with torch.no_grad():
            torch.testing.assert_close(fast(scores), module(scores), atol=1e-4, rtol=1e-4)
        print("drop-in output matches the module's")


if __name__ == "__main__":
    main()
