"""Contrastive prompting: in-context form of CUDA-L1's contrastive RL.

Each prompt shows several earlier kernels with their measured speedups: the fastest
correct ones and a few others (slower or failed, chosen at random for diversity), fastest
first. The model is asked first to analyse why the faster ones are faster (and why the
failures failed), then to write a kernel better than all of them.
"""

from __future__ import annotations

from kernelsmith.prompts import strategies as prompting
from kernelsmith.search.base import Proposal, Strategy, register, verified_speedup
from kernelsmith.search.types import Candidate


@register
class Contrastive(Strategy):
    name = "contrastive"
    OPTIONS = {
        "top": 4,  # fastest correct kernels shown
        "diverse": 2,  # plus this many others (slower or failed), drawn at random
        "warmup": 4,  # fresh kernels from the task prompt before there is a history
        "samples": 1,
        "proposals": None,  # total prompts (None: until the budget stops it)
    }

    def __init__(self, task, context=None, **options):
        super().__init__(task, context, **options)
        self.pool: list[Candidate] = []  # finished candidates with code, first of each distinct code
        self.codes: set[str] = set()
        self.fresh = 0  # fresh prompts sent
        self.in_flight: set[int] = set()
        self.made = 0  # prompts sent

    def history(self, serial: int) -> list[Candidate]:
        """What prompt `serial` shows: top-k correct by speedup, then diverse others;
        sorted fastest first, failures last."""
        ranked = sorted((c for c in self.pool if verified_speedup(c) is not None),
                        key=lambda c: -verified_speedup(c))
        top = ranked[:self.opts["top"]]
        rest = [c for c in self.pool if c not in top]
        rng = self.rng(serial)
        extra = rng.sample(rest, min(self.opts["diverse"], len(rest)))
        return sorted(top + extra, key=lambda c: (verified_speedup(c) is None, -(verified_speedup(c) or 0.0),
                                                  self.pool.index(c)))

    def propose(self, k: int) -> list[Proposal]:
        out = []
        limit = self.opts["proposals"]
        while len(out) < k and (limit is None or self.made < limit):
            if self.fresh < self.opts["warmup"] or (not self.pool and not self.in_flight):
                p = self._proposal(prompting.fresh(self.task, self.ctx), {"kind": "fresh"})
                self.fresh += 1
            elif self.pool:
                shown = self.history(self.serial)
                p = self._proposal(prompting.contrastive(self.task, self.ctx, shown), {"kind": "contrastive"},
                                   parents=[c.id for c in shown])
            else:
                break  # wait for the first results
            self.in_flight.add(p.strategy_info["serial"])
            self.made += 1
            out.append(p)
        return out

    def _observe(self, cands: list[Candidate]) -> None:
        for c in cands:
            self.in_flight.discard(c.strategy_info.get("serial"))
            if c.code and not c.format_error and c.result is not None and c.code not in self.codes:
                self.codes.add(c.code)
                self.pool.append(c)

    def restore(self, cands: list[Candidate]) -> None:
        super().restore(cands)
        prompts = {c.strategy_info.get("serial"): c.strategy_info.get("kind") for c in cands
                   if c.strategy_info.get("strategy") == self.name}
        self.made = len(prompts)
        self.fresh = sum(kind == "fresh" for kind in prompts.values())

    def done(self) -> bool:
        limit = self.opts["proposals"]
        return limit is not None and self.made >= limit and not self.in_flight
