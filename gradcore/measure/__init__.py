"""The measuring core: recipes that both theorems and technique contracts call.

Every recipe is a keyword-only function decorated with :func:`recipe` that returns a
:class:`Measurement`: its value, its :class:`Kind`, dtype, device, sizes and a
reproduction generated from the call. A theorem calls recipes and records
``claim.compare(name, claimed=…, measured=m)``; a contract clause applies the same
recipe to a user's technique (passed as :class:`Given`).
"""
from .measurement import Given, Kind, Measurement, recipe

__all__ = ["Given", "Kind", "Measurement", "recipe"]
