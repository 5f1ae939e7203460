"""pytest plugin: runs catalogued claims per device and writes the results file.

Opted into with ``-p gradcore.verify.plugin`` (this project's ``addopts``); it is not
registered for every pytest run, since its ``--device`` option and seeding belong to
gradcore's own suites (downstream projects use :mod:`gradcore.testing`). A theorem test is marked
``@pytest.mark.claim("ID")`` and takes the ``claim`` fixture (a
:class:`~gradcore.verify.record.ClaimRecorder`) and, when numeric, the ``device``
fixture. After the test body runs, the derived verdict must equal the catalogue's
``expected_verdict``; otherwise the test fails with the checks that decided it.
Under pytest-xdist each worker ships its records to the controller, which alone
writes the results file.
"""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ..errors import GradcoreError
from . import catalogue as cat
from ..measure import profiles
from . import guard, results
from .devices import DEVICE_CHOICES, selected_devices
from .record import ClaimRecorder

# Hypothesis's own pytest plugin may load ``--hypothesis-profile`` before this plugin configures.
profiles.register()

_RECORDS = pytest.StashKey[list]()
_SELECTED = pytest.StashKey[set]()
_CATALOGUE = pytest.StashKey[dict]()
_START = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcore")
    group.addoption("--device", default="auto", choices=DEVICE_CHOICES,
                    help="devices for numeric claims: cpu, cuda, all, or auto (cpu plus cuda when present)")
    group.addoption("--gradcore-seed", type=int, default=0, help="base seed for torch/numpy/random (default 0)")
    group.addoption("--gradcore-results", default=None,
                    help="where to write the results file (default: ini gradcore_results)")
    group.addoption("--only", default=None, metavar="IDS_OR_TOPICS",
                    help="comma-separated claim ids or topics to run (e.g. ACT-01,attention); "
                         "other claims keep their entries in an existing results file")
    group.addoption("--gradcore-catalogue", action="append", default=[], metavar="DIR",
                    help="a catalogue directory added to gradcore's built-in claims (repeatable)")
    parser.addini("gradcore_catalogue", "catalogue directories (relative to the rootdir) added to gradcore's "
                  "built-in claims", type="paths", default=[])
    parser.addini("gradcore_catalogue_only", "read only gradcore_catalogue, not the built-in claims",
                  type="bool", default=False)
    parser.addini("gradcore_results", "results file written after a run of claims", default="reports/results.json")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(id): the catalogued claim this theorem test checks")
    hypothesis_profile = config.getoption("hypothesis_profile", default=None)
    try:
        profiles.load(hypothesis_profile)
    except GradcoreError as e:
        raise pytest.UsageError(str(e)) from None
    import torch

    # One intra-op thread in every run, serial or xdist: a reduction split over another
    # number of threads rounds differently, and a serial run must reproduce a parallel
    # one constant for constant. (Under xdist the workers fill the cores anyway.)
    torch.set_num_threads(1)
    config.stash[_RECORDS] = []
    config.stash[_SELECTED] = set()
    config.stash[_START] = time.perf_counter()
    extra = [*config.getini("gradcore_catalogue"), *config.getoption("gradcore_catalogue")]
    try:
        config.stash[_CATALOGUE] = cat.load(extra=tuple(extra), builtin=not config.getini("gradcore_catalogue_only"))
    except GradcoreError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" not in metafunc.fixturenames:
        return
    import torch

    params = []
    for d in selected_devices(metafunc.config.getoption("device")):
        marks = ()
        if d == "cuda" and not torch.cuda.is_available():
            marks = (pytest.mark.skip(reason="CUDA requested but torch.cuda.is_available() is False"),)
        params.append(pytest.param(d, id=d, marks=marks))
    metafunc.parametrize("device", params)


def _only(config: pytest.Config) -> set[str] | None:
    """Claim ids selected by ``--only`` (ids or topics); None when every claim runs."""
    option = config.getoption("only")
    if not option:
        return None
    known = config.stash[_CATALOGUE]
    selected: set[str] = set()
    for word in filter(None, (w.strip() for w in option.split(","))):
        ids = {cid for cid, c in known.items() if word in (cid, c.topic)}
        if not ids:
            topics = sorted({c.topic for c in known.values()})
            raise pytest.UsageError(f"--only: {word!r} is neither a claim id nor a topic ({', '.join(topics)})")
        selected |= ids
    return selected


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = config.stash[_CATALOGUE]
    only = _only(config)
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("claim")
        if marker is None:
            (drop if only is not None else keep).append(item)
            continue
        if not marker.args:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.claim needs a claim id")
        cid = marker.args[0]
        if cid not in known:
            raise pytest.UsageError(f"{item.nodeid}: unknown claim id {cid!r} "
                                    f"(catalogues read: {known.read_from()})")
        (keep if only is None or cid in only else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    # The claims this run measures; every other claim keeps its entry in the results file.
    config.stash[_SELECTED] = {m.args[0] for m in (i.get_closest_marker("claim") for i in keep) if m}


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest) -> None:
    """Seed every RNG before each test so that a run does not depend on test order."""
    import numpy as np
    import torch

    seed = request.config.getoption("gradcore_seed")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("gradcore_seed")


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> ClaimRecorder:
    """The recorder for the claim named by the test's ``claim`` marker."""
    marker = request.node.get_closest_marker("claim")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses the claim fixture without @pytest.mark.claim")
    entry = request.config.stash[_CATALOGUE][marker.args[0]]
    callspec = getattr(request.node, "callspec", None)
    device = callspec.params.get("device", "cpu") if callspec else "cpu"
    recorder = ClaimRecorder(entry.id, device, rtol=entry.rtol, atol=entry.atol)
    request.node.stash[_RECORDER] = recorder
    return recorder


_RECORDER = pytest.StashKey[ClaimRecorder]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    start = time.perf_counter()
    outcome = yield
    recorder = item.stash.get(_RECORDER, None)
    if recorder is None:
        return outcome
    expected = item.config.stash[_CATALOGUE][recorder.claim_id].expected_verdict
    verdict = recorder.verdict
    problems = recorder.problems()
    if verdict != expected or problems:
        lines = [f"{recorder.claim_id} on {recorder.device}: measured verdict {verdict!r}, "
                 f"catalogue expects {expected!r}", *problems]
        lines += [f"  {'ok ' if c.holds else 'FAIL' if c.holds is False else '?? '} {c.name}: "
                  f"measured {c.measured} {c.relation} claimed {c.claimed} (±{c.tolerance:g})"
                  + (f" [outside: {c.outside}]" if c.outside else "") for c in recorder.constants]
        raise AssertionError("\n".join(lines))
    record = recorder.to_json()
    path, line, _ = item.location
    record.update(id=recorder.claim_id, device=recorder.device,
                  duration_s=round(time.perf_counter() - start, 3),
                  test={"file": path, "line": (line or 0) + 1, "nodeid": item.nodeid})
    item.config.stash[_RECORDS].append(record)
    return outcome


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the records a worker measured and the claims it selected."""
    node.config.stash[_RECORDS].extend(node.workeroutput.get("gradcore_records", []))
    node.config.stash[_SELECTED].update(node.workeroutput.get("gradcore_selected", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    records = config.stash[_RECORDS]
    if _is_xdist_worker(config):
        config.workeroutput["gradcore_records"] = records
        config.workeroutput["gradcore_selected"] = sorted(config.stash[_SELECTED])
        return
    if not records:
        return
    target = config.getoption("gradcore_results") or config.getini("gradcore_results")
    env = results.environment(
        seed=config.getoption("gradcore_seed"), profile=profiles.selected_name(),
        wall_time_s=time.perf_counter() - config.stash[_START],
        workers=int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0) or _worker_count(config),
        devices=sorted({r["device"] for r in records}))
    stamp = results.measured_in(env)
    records = [dict(r, measured_in=stamp) for r in records]
    path = Path(config.rootpath, target)
    try:
        doc, kept, note = results.update(path, config.stash[_CATALOGUE], records, env, _differ,
                                         config.stash[_SELECTED], _reaches())
    except GradcoreError as e:   # the run's verdicts stand, but its results are not on disk: say so, once
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        _say(config, f"gradcore: error: results not written ({e}); any previous file is unchanged")
        return
    _say(config, f"gradcore: {len(doc['claims']) - kept} claims measured"
         + (f", {kept} kept from the previous file" if kept else "") + f", results written to {path}" + note)


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line, file=sys.stderr)


def _reaches() -> dict[str, list[str]]:
    """Claim id → the technique kinds whose contract clauses cite it (issue 22), written into the
    results so the report shows what ``gradcore check`` measures without its renderer importing contracts."""
    from .contracts import reaches

    return reaches()


def _differ(first: dict[str, Any], other: dict[str, Any], device: str) -> list[guard.Change]:
    return guard.compare_device("", first, other, device)


def _worker_count(config: pytest.Config) -> int:
    n = getattr(config.option, "numprocesses", None)
    return int(n) if isinstance(n, int) else 1
