"""Public re-export of gradcore's search for downstream theorems (``examples/downstream``).

The search is measuring, so it lives in the measuring core: :mod:`gradcore.measure.search`
(maximize, minimize, counterexamples) and :mod:`gradcore.measure.candidates` (the structured
candidates every search scores). Downstream projects written against ``gradcore.verify.search``
keep working through this module; new code imports from the measuring core.
"""
from ..measure.candidates import grid, structured_matrices, structured_vectors
from ..measure.search import Candidates, Found, find_counterexample, maximize, minimize, search

__all__ = ["Candidates", "Found", "find_counterexample", "grid", "maximize", "minimize", "search",
           "structured_matrices", "structured_vectors"]
