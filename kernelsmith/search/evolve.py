"""Evolutionary search over a program database (as in OpenEvolve / ShinkaEvolve).

The database has several islands that evolve apart; each keeps a MAP-Elites archive: one
elite per cell of (speedup bucket x code-length bucket), so fast kernels don't crowd out
different, promising ones. A child's parent is drawn from its island's archive
(tournament or fitness-proportional), the prompt shows the parent with its feedback plus
a few "inspirations" (other elites with their speedups), and the reply is either
SEARCH/REPLACE edits of the parent (probability diff_prob) or a full rewrite. Every
migrate_every evaluated candidates each island's best moves to the next island (a ring).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from kernelsmith.prompts import strategies as prompting
from kernelsmith.search.base import Proposal, Strategy, cand_fitness, register, verified_speedup
from kernelsmith.search.types import Candidate


@dataclass
class Island:
    archive: dict[tuple[int, int], str] = field(default_factory=dict)  # cell -> candidate id
    members: list[str] = field(default_factory=list)  # every candidate born or migrated here
    fresh: int = 0  # fresh kernels asked for this island


@register
class Evolve(Strategy):
    name = "evolve"
    OPTIONS = {
        "islands": 3,
        "seeds": 2,  # fresh kernels per island before it evolves (more while its archive is empty)
        "migrate_every": 12,  # evaluated candidates between migrations
        "selection": "tournament",  # or "proportional" (to fitness)
        "tournament": 3,
        "inspirations": 2,  # other elites shown with the parent
        "diff_prob": 0.7,  # SEARCH/REPLACE edits of the parent; else a full rewrite
        "speedup_edges": (0.5, 1.0, 1.5, 2.0, 3.0, 5.0),  # archive cells along speedup
        "length_edges": (80, 160, 320),  # and along code length (non-blank lines)
        "samples": 1,
    }

    def __init__(self, task, context=None, **options):
        super().__init__(task, context, **options)
        if self.opts["selection"] not in ("tournament", "proportional"):
            raise ValueError(f"evolve: selection must be 'tournament' or 'proportional', "
                             f"not {self.opts['selection']!r}")
        if self.opts["islands"] < 1 or self.opts["migrate_every"] < 1:
            raise ValueError("evolve: islands and migrate_every must be at least 1")
        self.islands = [Island() for _ in range(self.opts["islands"])]
        self.evaluated = 0
        self.migrations: list[dict] = []  # {"at", "from", "to", "id"}
        self._foreign = 0

    # -- the database ---------------------------------------------------------------------
    def cell(self, c: Candidate) -> tuple[int, int]:
        s = verified_speedup(c)
        speed = 0 if s is None else 1 + bisect.bisect_right(list(self.opts["speedup_edges"]), s)
        lines = sum(1 for line in c.code.splitlines() if line.strip())
        return speed, bisect.bisect_right(list(self.opts["length_edges"]), lines)

    def elites(self, island: int) -> list[Candidate]:
        arch = self.islands[island].archive
        return [self.seen[arch[cell]] for cell in sorted(arch)]

    def insert(self, island: int, c: Candidate) -> bool:
        """Place c in the island's archive if it beats its cell's elite."""
        isl = self.islands[island]
        if c.id not in isl.members:
            isl.members.append(c.id)
        f = cand_fitness(c)
        if f <= 0 or not c.code:  # format errors, rejected cheats: nothing to build on
            return False
        cell = self.cell(c)
        cur = isl.archive.get(cell)
        if cur is None or f > cand_fitness(self.seen[cur]):
            isl.archive[cell] = c.id
            return True
        return False

    def best(self, island: int) -> Candidate | None:
        el = self.elites(island)
        return max(el, key=cand_fitness) if el else None

    def migrate(self) -> None:
        n = len(self.islands)
        if n < 2:
            return
        movers = [self.best(i) for i in range(n)]
        for i, c in enumerate(movers):
            if c is not None:
                self.insert((i + 1) % n, c)
                self.migrations.append({"at": self.evaluated, "from": i, "to": (i + 1) % n, "id": c.id})

    def select_parent(self, island: int, rng) -> Candidate:
        el = self.elites(island)
        if self.opts["selection"] == "proportional":
            weights = [cand_fitness(c) for c in el]
            return rng.choices(el, weights=weights)[0] if sum(weights) > 0 else rng.choice(el)
        return max(rng.sample(el, min(self.opts["tournament"], len(el))), key=cand_fitness)

    def select_inspirations(self, island: int, parent: Candidate, rng) -> list[Candidate]:
        others = [c for c in self.elites(island) if c.id != parent.id]
        want = self.opts["inspirations"]
        if not others or want <= 0:
            return []
        top = max(others, key=cand_fitness)
        rest = [c for c in others if c is not top]
        return [top] + rng.sample(rest, min(want - 1, len(rest)))

    # -- protocol ---------------------------------------------------------------------------
    def propose(self, k: int) -> list[Proposal]:
        return [self._one() for _ in range(max(0, k))]

    def _one(self) -> Proposal:
        serial = self.serial
        island = serial % len(self.islands)
        isl = self.islands[island]
        if not isl.archive or isl.fresh < self.opts["seeds"]:
            isl.fresh += 1
            return self._proposal(prompting.fresh(self.task, self.ctx), {"island": island, "op": "fresh"})
        rng = self.rng(serial)
        parent = self.select_parent(island, rng)
        insp = self.select_inspirations(island, parent, rng)
        mode = "diff" if rng.random() < self.opts["diff_prob"] else "full"
        msgs = prompting.evolve(self.task, self.ctx, parent, insp, mode=mode)
        return self._proposal(msgs, {"island": island, "op": mode, "inspirations": [c.id for c in insp]},
                              parents=[parent.id], mode=mode, parent_code=parent.code if mode == "diff" else "")

    def _observe(self, cands: list[Candidate]) -> None:
        for c in cands:
            island = c.strategy_info.get("island")
            if c.strategy_info.get("strategy") != self.name or not isinstance(island, int) \
                    or not 0 <= island < len(self.islands):
                island = self._foreign % len(self.islands)  # seeds from another strategy's run
                self._foreign += 1
            self.insert(island, c)
            if c.result is not None:
                self.evaluated += 1
                if self.evaluated % self.opts["migrate_every"] == 0:
                    self.migrate()

    def restore(self, cands: list[Candidate]) -> None:
        super().restore(cands)
        asked = {(c.strategy_info.get("serial"), c.strategy_info["island"]) for c in cands
                 if c.strategy_info.get("strategy") == self.name and c.strategy_info.get("op") == "fresh"
                 and c.strategy_info.get("island") in range(len(self.islands))}
        for _, island in asked:  # fresh kernels already asked for, per island
            self.islands[island].fresh += 1
