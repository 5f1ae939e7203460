"""``gradcore audit``: gradcore's claims measured on a real network.

:mod:`.blocks` finds the blocks and captures the call the model makes to each, :mod:`.measure`
measures them (matrix-free) as Measurements, :mod:`.model` builds the model from ``MODULE:FACTORY``
under the stated seed (and loads weights), :mod:`.recipes` reproduces any one quantity, and
:mod:`.render` writes the markdown report, the results document and the figures.
"""
from .measure import Audit, BlockResult, ClaimCheck, Settings, audit

__all__ = ["Audit", "BlockResult", "ClaimCheck", "Settings", "audit"]
