"""The baseline: n independent samples of the task prompt, no feedback at all."""

from __future__ import annotations

from kernelsmith.prompts import strategies as prompting
from kernelsmith.search.base import Proposal, Strategy, register
from kernelsmith.search.types import Candidate


@register
class BestOfN(Strategy):
    name = "best-of-n"
    OPTIONS = {
        "n": 8,  # total samples
        "samples": 1,  # samples per request (n > 1 asks the server for several choices at once)
    }

    def __init__(self, task, context=None, **options):
        super().__init__(task, context, **options)
        self.asked = 0  # samples requested and not lost
        self.got = 0  # samples observed

    def propose(self, k: int) -> list[Proposal]:
        out = []
        while len(out) < k and self.asked < self.opts["n"]:
            n = min(self.opts["samples"], self.opts["n"] - self.asked)
            out.append(self._proposal(prompting.fresh(self.task, self.ctx), {"index": self.asked}, n=n))
            self.asked += n
        return out

    def _observe(self, cands: list[Candidate]) -> None:
        self.got += sum(c.strategy_info.get("strategy") == self.name for c in cands)

    def restore(self, cands: list[Candidate]) -> None:
        super().restore(cands)
        self.asked = self.got  # requests lost in a crash are asked again

    def done(self) -> bool:
        return self.got >= self.opts["n"]
