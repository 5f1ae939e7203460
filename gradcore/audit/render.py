"""The audit as markdown, JSON and figures — views of an ``Audit``; nothing is measured here."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..verify import results  # noqa: E402
from ..verify.views import num, table  # noqa: E402
from ..measure.measurement import Measurement, dtype_name  # noqa: E402
from ..verify.record import constant, plain  # noqa: E402
from .measure import RMS, SIGMA, Audit, BlockResult, AuditedClaim  # noqa: E402

KIND_ORDER = ("residual", "transformer", "attention", "depthwise", "norm", "recurrent")


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure atomically (temporary file in the same directory, then os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


AUDIT_KIND = "audit"   # the technique kind of an audit document (gradcore-check/2)


def _constant(name: str, m: Measurement, check: AuditedClaim | None = None) -> dict[str, Any]:
    """A measurement as the results file's constant object; a claim check's carries the claim's value."""
    c = constant(name, m)
    if check is not None and check.reference is not None:
        c.update(claimed=check.reference, relation=check.relation, holds=check.holds)
    return c


def _verdict(b: BlockResult) -> str:
    judged = [c.holds for c in b.claims if c.holds is not None]
    return "violated" if False in judged else "holds" if judged else "inconclusive"


def _clause(b: BlockResult) -> dict[str, Any]:
    """One block as a clause: its verdict from the claims checked on it, every quantity a constant."""
    judged = any(c.holds is not None for c in b.claims)
    notes = [f"{c.claim}: {c.note}" for c in b.claims if c.note]
    notes += [f"{claim} not applied: {why}" for claim, why in b.unapplied]
    if not judged:
        notes.insert(0, "measured only: no claim checked on this block gives a verdict")
    return {"id": b.name, "claims": sorted({c.claim for c in b.claims}),
            "statement": f"{b.type} ({b.kind}) at its input {'×'.join(map(str, b.in_shape))}: the claims "
                         "that apply to its kind, on the call the model makes to it",
            "verdict": _verdict(b), "gate": judged,
            "constants": [_constant(SIGMA, b.sigma), _constant(RMS, b.rms),
                          *(_constant(c.key, c.measured, c) for c in b.claims)],
            "facts": plain({"kind": b.kind, "type": b.type, "input": list(b.in_shape), "lanczos_steps": b.steps,
                            "lanczos_residual": b.residual, "rms_standard_error": b.rms_se,
                            "unapplied": [list(u) for u in b.unapplied]}),
            "counterexample": None, "note": "; ".join(notes), "duration_s": round(b.seconds, 3)}


def to_json(a: Audit) -> dict[str, Any]:
    """The audit as a results document (``gradcore-check/2``, technique kind ``audit``): ``gradcore
    report`` renders it and ``gradcore guard`` compares it with an audit baseline, block by block."""
    s = a.settings
    env = results.environment(seed=s.seed, profile=f"audit-{s.mode}", wall_time_s=a.wall_s, workers=1,
                              devices=[s.device])
    clauses = [_clause(b) for b in a.blocks]
    return {"schema": results.CHECK_SCHEMA, "environment": env,
            "technique": {"name": a.model, "kind": AUDIT_KIND, "spec": a.target or a.model},
            "ok": not any(c["verdict"] == "violated" for c in clauses),
            "violations": [c["id"] for c in clauses if c["verdict"] == "violated"], "unmeasured": [],
            "clauses": clauses,
            "audit": plain({"input_shape": list(a.input_shape), "dtype": dtype_name(s.dtype), "mode": s.mode,
                            "weights": a.weights, "config": a.config, "inputs": s.inputs, "tol": s.tol, "max_steps": s.max_steps, "probes": s.probes,
                            "outputs": a.outputs, "profile": [list(p) for p in a.profile], "notes": a.notes,
                            "cpu_s": a.cpu_s, "threads": a.environment["threads"],
                            "load_average": a.environment["load_average"]})}


def _caption(a: Audit) -> str:
    s = a.settings
    return (f"{a.model} · input {tuple(a.input_shape)} · {str(s.dtype).removeprefix('torch.')} · {s.mode} mode · "
            f"seed {s.seed}{' · ' + Path(a.weights).name if a.weights else ''} · torch {a.environment['torch']}")


def profile_figure(a: Audit, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=110)
    names = [n for n, _ in a.profile]
    ax.plot(range(len(names)), [g for _, g in a.profile], marker="o", markersize=3)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("‖∂L/∂h‖ at init (one backward pass)")
    ax.set_title(f"{a.model}: gradient norm through depth", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.text(0.99, 0.01, _caption(a), ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout()
    return save_figure(fig, path)


def gains_figure(a: Audit, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=110)
    for kind in KIND_ORDER:
        idx = [i for i, b in enumerate(a.blocks) if b.kind == kind]
        if idx:
            ax.scatter(idx, [a.blocks[i].sigma_max for i in idx], s=14, label=f"{kind} σ_max")
            ax.scatter(idx, [a.blocks[i].rms_gain for i in idx], s=14, marker="x", label=f"{kind} RMS gain")
    ax.set_yscale("log")
    ax.set_xlabel("block (order of named_modules)")
    ax.set_ylabel("Jacobian gain")
    ax.set_title(f"{a.model}: σ_max and RMS gain of every block", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if a.blocks:
        ax.legend(fontsize=7, ncol=2)
    fig.text(0.99, 0.01, _caption(a), ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout()
    return save_figure(fig, path)


def _num(x: float) -> str:
    """A measured number, or words when it is not finite (never a bare ``nan``)."""
    return num(x) if math.isfinite(x) else ("∞ (explodes)" if abs(x) == math.inf else "not finite (NaN)")


def _holds(h: bool | None) -> str:
    return {True: "✅ holds", False: "❌ fails", None: "measured"}[h]


def rms_cell(b: BlockResult) -> str:
    """The RMS gain estimate, and — where it lies above σ_max, which bounds it — whether its interval allows that."""
    cell = f"{_num(b.rms_gain)} ± {_num(b.rms_se)}"
    if not b.rms_gain > b.sigma_max:
        return cell
    lo, hi = b.rms_interval
    if lo <= b.sigma_max:
        return cell + (f" (above σ_max, which bounds it; its 95 % interval [{num(lo)}, {num(hi)}] "
                       "reaches σ_max: the estimate's error allows it)")
    return cell + (f" (❌ above σ_max beyond its 95 % interval [{num(lo)}, {num(hi)}]: σ_max is a Lanczos "
                   "Ritz value, a lower bound — raise --max-steps or lower --tol)")


def _mode(s: Any) -> str:
    return ("BatchNorm normalises with the batch's own statistics, as in training (no running statistics are "
            "read or updated)" if s.mode == "train" else
            "BatchNorm normalises with its running statistics (eval mode)")


def _inputs(a: Audit) -> str:
    if a.settings.inputs == "float":
        return "N(0, 1) entries"
    first = a.profile[1][0] if len(a.profile) > 2 else "the first block"
    return ("token ids uniform over the vocabulary; ids have no gradient, so the gradient profile starts at the "
            f"embedding output — the input stream of `{first}`")


def markdown(a: Audit, figures: dict[str, str]) -> str:
    s = a.settings
    kinds = {k: sum(b.kind == k for b in a.blocks) for k in KIND_ORDER}
    rows = [[f"`{b.name}`", b.kind, b.type, "×".join(map(str, b.in_shape)), _num(b.sigma_max),
             rms_cell(b), f"{b.steps} / {_num(b.residual)}", num(b.seconds)]
            for b in a.blocks]
    unapplied = [[f"`{b.name}`", claim, why] for b in a.blocks for claim, why in b.unapplied]
    claims = [[f"`{b.name}`", c.claim, c.quantity, num(c.measured.value), "" if c.reference is None else num(c.reference),
               _holds(c.holds), c.note] for b in a.blocks for c in b.claims if not math.isnan(c.measured.value)]
    failing = [r for r in claims if r[5].startswith("❌")]
    prof = [[n, _num(g)] for n, g in a.profile]
    return "\n".join([
        f"# gradcore audit: {a.model}", "",
        f"Input {'×'.join(map(str, a.input_shape))} ({_inputs(a)}), {str(s.dtype).removeprefix('torch.')}, "
        + (f"built from `--config {a.config}`, " if a.config else "")
        + (f"weights loaded from `{a.weights}` into the model built under seed {s.seed}" if a.weights else
           f"weights at initialisation as the factory builds them under seed {s.seed} (nothing downloaded)")
        + f"; torch {a.environment['torch']}, "
        f"{a.environment['threads']} threads; wall time **{a.wall_s:.1f} s**"
        + (f" (process CPU time {a.cpu_s:.1f} s; load average {a.environment['load_average']:.1f} "
           "when it finished — the machine was shared)" if a.cpu_s is not None else "") + ".", "",
        f"Mode {s.mode}: dropout off; {_mode(s)}. Each block is measured on the function the model computes "
        "with it — called with the arguments it receives in one forward pass (masks, memory, keyword arguments "
        f"held fixed), differentiated with respect to its input stream: σ_max of its Jacobian by matrix-free Lanczos (residual ‖JᵀJv − σ²v‖ ≤ {s.tol:g}·σ², so σ_max to within {s.tol / 2:.2g} relative, from below; at most "
        f"{s.max_steps} steps — steps / final relative residual shown; a residual above {s.tol:g} means the "
        f"cap was hit and σ_max is a lower bound), RMS gain ‖J‖_F/√n from {s.probes} Hutchinson probes "
        "(± standard error).", "",
        "Blocks found: " + (", ".join(f"{n} {k}" for k, n in kinds.items() if n) or "none") + ".", "",
        *(["Not measured:", "", *[f"- {n}" for n in a.notes], ""] if a.notes else []),
        "## Claims on the real blocks", "",
        (f"{len(failing)} check(s) fail on this model." if failing else "No check fails on this model.")
        + " A blank claim value means the catalogue predicts no number there; the measurement is "
        "reported for comparison with the toy sizes in `reports/verification.md`.", "",
        table(["block", "claim", "quantity", "measured", "claim's value", "verdict", "note"], claims), "",
        f"Claims not applied ({len(unapplied)}): " + ("none." if not unapplied else ""), "",
        *([table(["block", "claim", "why not"], unapplied), ""] if unapplied else []),
        "## Gradient norm through depth", "",
        f"L = Σ ⟨g, y⟩ over the model's output tensor(s) {', '.join(f'`{o}`' for o in a.outputs)}, "
        "g ~ N(0, I); ‖∂L/∂h‖ from one backward pass.", "",
        f"![gradient profile]({figures['profile']})", "",
        table(["tensor", "‖∂L/∂h‖"], prof), "",
        "## Every block", "",
        f"![block gains]({figures['gains']})", "",
        table(["block", "kind", "type", "input", "σ_max", "RMS gain", "Lanczos steps / residual", "s"], rows), ""])


def write(a: Audit, out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """``<stem>.md``, ``<stem>.json`` and ``figures/<stem>-*.png`` in ``out_dir``, all atomic."""
    out_dir = Path(out_dir)
    figs = {"profile": f"figures/{stem}-profile.png", "gains": f"figures/{stem}-gains.png"}
    profile_figure(a, out_dir / figs["profile"])
    gains_figure(a, out_dir / figs["gains"])
    md = results.write_text(markdown(a, figs), out_dir / f"{stem}.md")
    js = results.write(to_json(a), out_dir / f"{stem}.json")
    return md, js
