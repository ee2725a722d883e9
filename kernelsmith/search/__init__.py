"""Search: strategies propose prompts, the loop runs the model and the evaluator.

    from kernelsmith.search import Budget, SearchContext, make_strategy, run_search
    strategy = make_strategy("refine", task, SearchContext(gpu=facts, seed=0), chains=4)
    outcome = run_search(task, strategy, llm, evaluator, Budget(max_candidates=32))
"""

from kernelsmith.search.base import (
    STRATEGIES, Budget, Proposal, SearchContext, SearchStats, Strategy, best_verified, fitness, make_strategy,
    register, verified_speedup,
)
from kernelsmith.search.types import Candidate, Evaluate
from kernelsmith.search import best_of_n, contrastive, evolve, refine  # noqa: F401  (register themselves)
from kernelsmith.search.loop import SearchOutcome, run_search

__all__ = ["STRATEGIES", "Budget", "Candidate", "Evaluate", "Proposal", "SearchContext", "SearchOutcome",
           "SearchStats", "Strategy", "best_verified", "fitness", "make_strategy", "register", "run_search",
           "verified_speedup"]
