"""``gradcore audit``: gradcore's claims measured on a real network at initialisation.

:mod:`.blocks` finds the blocks, :mod:`.measure` measures them (matrix-free),
:mod:`.render` writes the markdown report and figures from the measurements.
"""
from .measure import Audit, BlockResult, ClaimCheck, Settings, audit

__all__ = ["Audit", "BlockResult", "ClaimCheck", "Settings", "audit"]
