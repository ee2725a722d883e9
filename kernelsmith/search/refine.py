"""Iterative refinement in parallel chains (CUDA-LLM's feature search and reinforcement).

Round 0 of every chain is a fresh kernel from the task prompt. Each later round shows the
chain its current kernel (the best so far in the chain, or the latest with follow=latest)
with the evaluator's feedback (compile log, mismatch detail, speedup and fraction of the
hardware floor), plus the last attempt when that one failed or was slower, and asks for
an improved kernel. Chains are independent: one stuck on a bad idea doesn't sink the rest.
"""

from __future__ import annotations

from kernelsmith.prompts import strategies as prompting
from kernelsmith.search.base import Proposal, Strategy, cand_fitness, register
from kernelsmith.search.types import Candidate


@register
class Refine(Strategy):
    name = "refine"
    OPTIONS = {
        "chains": 4,  # independent refinement chains
        "rounds": 5,  # per chain, round 0 (fresh) included
        "samples": 1,  # samples per prompt; the chain continues from the best of them
        "follow": "best",  # "best": the chain's best so far; "latest": its latest round
        "mode": "full",  # "full" rewrites or "diff" (SEARCH/REPLACE edits of the parent)
    }

    def __init__(self, task, context=None, **options):
        super().__init__(task, context, **options)
        if self.opts["follow"] not in ("best", "latest"):
            raise ValueError(f"refine: follow must be 'best' or 'latest', not {self.opts['follow']!r}")
        if self.opts["mode"] not in ("full", "diff"):
            raise ValueError(f"refine: mode must be 'full' or 'diff', not {self.opts['mode']!r}")
        n = self.opts["chains"]
        self.rounds_done = [0] * n  # rounds observed per chain
        self.history: list[list[list[Candidate]]] = [[] for _ in range(n)]  # chain -> rounds -> samples
        self.in_flight = [False] * n

    # -- state ------------------------------------------------------------------------------
    def latest(self, chain: int) -> Candidate | None:
        """The best sample of the chain's latest round."""
        rounds = self.history[chain]
        return max(rounds[-1], key=cand_fitness) if rounds else None

    def best(self, chain: int) -> Candidate | None:
        """The chain's fittest candidate (the later one on ties)."""
        best = None
        for group in self.history[chain]:
            for c in group:
                if best is None or cand_fitness(c) >= cand_fitness(best):
                    best = c
        return best

    def parent(self, chain: int) -> Candidate | None:
        return self.latest(chain) if self.opts["follow"] == "latest" else self.best(chain)

    def done(self) -> bool:
        return all(r >= self.opts["rounds"] for r in self.rounds_done)

    # -- protocol ---------------------------------------------------------------------------
    def propose(self, k: int) -> list[Proposal]:
        ready = [c for c in range(self.opts["chains"])
                 if not self.in_flight[c] and self.rounds_done[c] < self.opts["rounds"]]
        ready.sort(key=lambda c: (self.rounds_done[c], c))  # the laggards first
        out = []
        for chain in ready[:max(0, k)]:
            out.append(self._prompt(chain))
            self.in_flight[chain] = True
        return out

    def _prompt(self, chain: int) -> Proposal:
        rnd = self.rounds_done[chain]
        info = {"chain": chain, "round": rnd}
        parent = self.parent(chain)
        if parent is None:
            return self._proposal(prompting.fresh(self.task, self.ctx), info)
        last = self.latest(chain)
        if last is parent:
            last = None
        mode = self.opts["mode"] if parent.code else "full"  # a format error has nothing to edit
        msgs = prompting.improve(self.task, self.ctx, parent, last=last, mode=mode)
        return self._proposal(msgs, info, parents=[parent.id], mode=mode,
                              parent_code=parent.code if mode == "diff" else "")

    def _observe(self, cands: list[Candidate]) -> None:
        rounds: dict[tuple[int, int], list[Candidate]] = {}
        for c in cands:
            chain, rnd = c.strategy_info.get("chain"), c.strategy_info.get("round")
            if c.strategy_info.get("strategy") != self.name or not isinstance(chain, int) \
                    or not 0 <= chain < self.opts["chains"]:
                continue  # another strategy's candidate (a resumed run that switched strategies)
            rounds.setdefault((chain, rnd), []).append(c)
        for (chain, rnd), group in rounds.items():
            self.history[chain].append(group)
            self.rounds_done[chain] = max(self.rounds_done[chain], (rnd or 0) + 1)
            self.in_flight[chain] = False
