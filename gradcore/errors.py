"""gradcore's one exception root and the errors every module raises under it.

Catch :class:`GradcoreError` to catch anything gradcore raises on purpose; a bare
Python or torch exception escaping gradcore is a bug. The command line maps them to
exit codes: :class:`UsageError`, :class:`InputError`, :class:`ResultsError`,
:class:`CatalogueError`, :class:`CheckError` and :class:`MeasurementError` (with its
:class:`TimeLimitError`) → 2.
"""
from __future__ import annotations


class GradcoreError(Exception):
    """Anything gradcore raises on purpose."""


class InputError(GradcoreError, ValueError):
    """An argument to a public gradcore function is invalid (message: "<argument>: <problem>")."""


class UsageError(GradcoreError):
    """A command-line invocation that cannot be carried out as given."""


class CatalogueError(GradcoreError):
    """The claim catalogue is missing, malformed or inconsistent."""


class ResultsError(GradcoreError):
    """A results file is missing, unreadable or not in gradcore's schema."""


class RecordingError(GradcoreError):
    """A theorem test used the recorder incorrectly."""


class CheckError(GradcoreError):
    """A technique cannot be checked (bad import, wrong kind, wrong shape, ...): one line."""


class MeasurementError(GradcoreError):
    """A quantity could not be measured (as opposed to: measured and found to violate a claim)."""


# The name the public API has documented since 0.1.
GradcoreInputError = InputError


class TimeLimitError(MeasurementError):
    """A measurement ran past its time limit (e.g. a technique that never returns)."""
