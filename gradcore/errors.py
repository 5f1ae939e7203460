"""gradcore's one exception root and the errors every module raises under it.

Import them from here, and only here: ``from gradcore.errors import InputError``.
Catch :class:`GradcoreError` to catch anything gradcore raises on purpose; a bare Python
or torch exception escaping gradcore is a bug (please report it). The command line maps
every one of them to exit status 2 with its message on one line (README, "Exit codes and
errors"); each docstring below says when the error is raised and what to do about it.
"""
from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What each exit status of ``gradcore`` means (README, "Exit codes and errors"): one thing each."""

    OK = 0          # every claim holds, the guard found no change, every clause holds
    FAILED = 1      # a theorem, the guard, a clause or an audited claim found a failure
    BAD_INPUT = 2   # any GradcoreError below: bad arguments or input, cannot be checked or measured
    CRASHED = 3     # a bug in gradcore (the traceback is in a log file)


class GradcoreError(Exception):
    """Anything gradcore raises on purpose.

    Raised: never directly; every error below derives from it.
    What to do: read the message, which names the argument, file or clause at fault.
    """


class InputError(GradcoreError, ValueError):
    """An argument of a public function is invalid; the message starts with its name.

    Raised: before any computation, when a value has the wrong type, dtype, device, shape or
    memory layout, lies outside its range (``t: entries must be >= 1, got min 0``), is not
    finite where that would turn into a silent NaN, or when a finite input would give a result
    that overflows the dtype.
    What to do: pass the argument as the message describes, e.g. cast both tensors to one dtype,
    call ``.contiguous()`` or ``.clone()`` on an expanded tensor, or use a wider dtype.
    """


class UsageError(GradcoreError):
    """A command cannot be carried out as given.

    Raised: by the command line for an output path that is a directory, a special file or one of
    the command's inputs, a missing theorem directory, ``--device cuda`` without CUDA, a run that
    measured nothing.
    What to do: change the arguments as the message says (``gradcore COMMAND --help`` has examples).
    """


class CatalogueError(GradcoreError):
    """A claim catalogue is missing, unreadable, malformed or inconsistent.

    Raised: when a ``--catalogue`` directory or a TOML file cannot be read, a field has the wrong
    type or an impossible value, or two files define one claim id; the message names the file,
    the claim and the field.
    What to do: fix that entry (CONTRIBUTING.md, "Catalogue entry", lists every field).
    """


class ResultsError(GradcoreError):
    """A results file is missing, unreadable or not valid against gradcore's schema.

    Raised: when a file given to ``report``, ``show``, ``guard`` or ``list`` cannot be read, is not
    JSON, fails ``gradcore/verify/results.schema.json`` (the message names the claim and field), or
    names a claim, device or constant twice.
    What to do: regenerate it with ``gradcore verify`` (or ``gradcore check``) rather than edit it
    by hand; a baseline is replaced deliberately with ``gradcore guard --accept``.
    """


class RecordingError(GradcoreError):
    """A theorem used the recorder wrongly.

    Raised: inside a theorem test, when a check has an unknown relation, a value that is not a
    number, an interval where its kind has none (or none where it needs one), a search bound that is
    not the Measurement its search returned, or when the test recorded no check at all.
    What to do: follow CONTRIBUTING.md, "Writing a theorem"; the message names the call.
    """


class CheckError(GradcoreError):
    """A technique cannot be checked at all.

    Raised: by ``gradcore check`` and ``gradcore.testing`` when the object cannot be imported (or
    exits on import), is not callable, is not of the kind asked for, returns the wrong shape or
    dtype, mutates or returns its own input, or gives non-finite output on the probed domain.
    What to do: make the object behave as its kind requires (README, "Check a new technique"), or
    pass ``--kind`` when the kind cannot be inferred.
    """


class MeasurementError(GradcoreError):
    """A quantity could not be measured — which is not the same as measured and found wanting.

    Raised: when gradcore's own measurement fails on a technique (a transform the technique does not
    support, a quantity that is undefined at the probed point); the clause is reported "could not be
    measured: <reason>", never as a violation.
    What to do: read the reason; a technique that supports ``torch.func`` transforms and float64
    usually measures. Report it if the reason is gradcore's.
    """


class NotApplicable(GradcoreError):
    """A clause's precondition does not hold for this technique, so the clause says nothing about it.

    Raised: by a contract clause, or the recipe it calls, when the technique lacks what the clause
    is about — an RMS-definition clause on a norm that centres its output, a bound on the
    recurrent weight for a cell with no square ``weight_hh``. The clause is reported "does not
    apply" with the reason; it neither holds nor fails, and a gating clause that does not apply
    leaves the check's exit status alone.
    What to do: nothing, unless the technique should have the property; then expose it in the
    form the reason names.
    """


class TimeLimitError(MeasurementError):
    """A measurement ran past its time limit (e.g. a technique that never returns).

    Raised: when one clause, or the preparation of a technique, takes longer than
    ``--time-limit`` seconds (default 300).
    What to do: raise the limit, or make the technique cheaper on small inputs.
    """


# The name the public API has documented since 0.1.
GradcoreInputError = InputError
