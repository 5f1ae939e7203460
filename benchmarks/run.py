"""Speed and accuracy of gradcore's measuring tools against what a user would write instead.

Timed with ``torch.utils.benchmark``: the methods of one table row in turn, three rounds, the fastest call
(or block of adaptive runs) of each kept (:func:`timed_together`). Every ratio compares methods measured in
the same run, in the same moments. Writes
``reports/benchmarks.json``, ``reports/benchmarks.md`` and ``reports/figures/bench-*.png``:

* top singular value of a Jacobian: matrix-free Golub–Kahan–Lanczos
  (``gradcore.spectral.operator_singular_values``) vs dense ``jacrev`` + ``svdvals`` vs
  SciPy's ``svds`` (ARPACK) on the same linearised operator — MLP widths 256…4096, then a
  3-layer conv net up to 262,144 wide, where no dense method fits in memory;
* convolution spectra (Sedghi, Gupta & Long 2019): all singular values and σ_max from
  ``gradcore.conv`` vs the NumPy formulation (``np.fft.fft2`` + ``np.linalg.svd``, all
  frequencies) — torch's own FFT/LAPACK calls measured against NumPy's;
* zero-padded and strided convolutions measured exactly (matrix-free) vs their circular
  counterpart (FFT): the padding gap;
* ``torch.nn.utils.parametrizations.spectral_norm`` on a convolution: the reshaped-kernel
  norm it divides by vs the operator norm;
* the theorem suite: wall time per topic, read from a results file.

Run: ``python benchmarks/run.py [--results reports/results.json] [--quick]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Before torch and NumPy load their OpenMP runtime, which reads it once: idle OpenMP threads sleep
# instead of spinning. On a CPU shared with other jobs a spinning thread holds a core the thread it
# waits for needs, and a small product then waits a scheduler time slice (Lanczos at width 1024 ran
# 3–6× slower for it); every method runs under the same policy, recorded in the report.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.sparse.linalg import LinearOperator, svds  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils import benchmark  # noqa: E402

from gradcore import conv, jacobian, lanczos, spectral  # noqa: E402
from gradcore.verify import results  # noqa: E402

F64 = torch.float64


def timed_together(methods: dict[str, Callable[[], object]], rounds: int = 3, budget: float = 10.0,
                   min_run_time: float = 0.1) -> dict[str, float]:
    """Seconds per call of each method, the fastest seen: one warm-up call each, then ``rounds`` rounds in
    which every method is timed in turn — a call taking over ``min_run_time`` once, a faster one as the
    fastest of ``torch.utils.benchmark``'s adaptive blocks (each the mean of many calls). A method whose
    timed calls so far took over ``budget`` seconds sits out later rounds. On a shared machine other jobs
    only ever add time (the ``timeit`` convention: keep the fastest), and methods compared in one row of
    the report see the same moments of it, so a burst of load does not land on one side of a ratio only
    (timed one after the other, a ratio here moved 2.5× between runs minutes apart)."""
    for fn in methods.values():
        fn()
    best = dict.fromkeys(methods, math.inf)
    spent = dict.fromkeys(methods, 0.0)
    for r in range(rounds):
        for name, fn in methods.items():
            if r and spent[name] > budget:
                continue
            start = time.perf_counter()
            fn()
            once = time.perf_counter() - start
            if once <= min_run_time:
                timer = benchmark.Timer(stmt="f()", globals={"f": fn}, num_threads=torch.get_num_threads())
                once = min(timer.blocked_autorange(min_run_time=min_run_time).times)
            best[name] = min(best[name], once)
            spent[name] += time.perf_counter() - start
    return best


def mlp(width: int):
    g = torch.Generator().manual_seed(0)
    Ws = [torch.randn(width, width, generator=g, dtype=F64) / width ** 0.5 for _ in range(3)]

    def f(x: torch.Tensor) -> torch.Tensor:
        for W in Ws:
            x = torch.tanh(W @ x)
        return x
    f.weights = Ws
    return f, torch.randn(width, generator=g, dtype=F64)


def convnet(channels: int, size: int = 32):
    """3 × (3×3 zero-padded conv → tanh), He init: an operator of width channels·size²."""
    g = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(3):
        c = nn.Conv2d(channels, channels, 3, padding=1, bias=False, dtype=F64)
        with torch.no_grad():
            nn.init.kaiming_normal_(c.weight, generator=g)
        c.weight.requires_grad_(False)
        layers += [c, nn.Tanh()]
    return nn.Sequential(*layers), torch.randn(1, channels, size, size, generator=g, dtype=F64)


def scipy_top(f, x: torch.Tensor, products: list[int] | None = None) -> float:
    """What a SciPy user writes: svds on a LinearOperator built from the same jvp/vjp products
    (``products``, when given, gets the number of products with J it made)."""
    op = jacobian.jacobian_operator(f, x)
    n, m = x.numel(), op.out_shape.numel()
    count = products if products is not None else [0]

    def matvec(u: np.ndarray) -> np.ndarray:
        count[0] += 1
        return op.matvec(torch.from_numpy(np.ascontiguousarray(u).reshape(x.shape))).reshape(-1).numpy()
    lin = LinearOperator((m, n), dtype=np.float64, matvec=matvec,
                         rmatvec=lambda w: op.rmatvec(torch.from_numpy(np.ascontiguousarray(w).reshape(op.out_shape))).reshape(-1).numpy())
    return float(svds(lin, k=1, tol=1e-6, return_singular_vectors=False, random_state=0)[0])


def weight_pass(weights: list[torch.Tensor]) -> Callable[[], torch.Tensor]:
    """One product with the largest weight matrix: a pass over it, the unit a Lanczos step pays six of
    in a 3-layer MLP (three in J·v, three in Jᵀ·u)."""
    w = max(weights, key=torch.Tensor.numel)
    v = torch.randn(w.shape[1], dtype=w.dtype, generator=torch.Generator().manual_seed(0))
    return lambda: torch.mv(w, v)


def bench_jacobian(widths: list[int], channels: list[int]) -> list[dict]:
    rows = []
    cases = [("MLP", w, *mlp(w)) for w in widths] + [("conv net 32×32", c * 1024, *convnet(c)) for c in channels]
    for family, width, f, x in cases:
        ours = spectral.operator_singular_values(f, x, 1, method="lanczos")
        auto = spectral.operator_singular_values(f, x, 1)
        products = [0]
        row = {"family": family, "width": width, "lanczos_steps": ours.steps, "lanczos_sigma": float(ours.values[0]),
               "residual": float(ours.residuals[0]), "default_method": auto.method,
               "default_rel": abs(float(auto.values[0]) / float(ours.values[0]) - 1),
               "scipy_rel": abs(scipy_top(f, x, products) / float(ours.values[0]) - 1), "scipy_products": products[0]}
        methods = {"lanczos_s": lambda: spectral.operator_singular_values(f, x, 1, method="lanczos"),
                   "scipy_s": lambda: scipy_top(f, x)}
        if auto.method != "lanczos":
            methods["default_s"] = lambda: spectral.operator_singular_values(f, x, 1)
        if width <= 16384:
            blk = spectral.operator_singular_values(f, x, 1, block=8)
            row["block_steps"] = blk.steps
            row["block_rel"] = abs(float(blk.values[0]) / row["lanczos_sigma"] - 1)
            methods["block_s"] = lambda: spectral.operator_singular_values(f, x, 1, block=8)
        dense: list[float] = []

        def run_dense():       # seconds at width 4096: its value is read off the timed calls
            dense.append(float(torch.linalg.svdvals(jacobian.jacobian(f, x))[0]))
        if family == "MLP":
            methods["dense_s"] = run_dense
            methods["weight_pass_s"] = weight_pass(f.weights)   # timed among the methods it bounds
        row.update(timed_together(methods))
        if dense:
            row["rel_error"] = abs(row["lanczos_sigma"] / dense[0] - 1)
        row.setdefault("default_s", row["lanczos_s"])
        rows.append(row)
        print(f"jacobian {family} {width}: {row}", flush=True)
    return rows


def numpy_svals(w: np.ndarray, n: int) -> np.ndarray:
    """Sedghi et al.'s listing: FFT of the (k, k, c_in, c_out) kernel, one SVD per frequency."""
    return np.linalg.svd(np.fft.fft2(w, (n, n), axes=[0, 1]), compute_uv=False)


def power_iteration(op: jacobian.JacobianOperator, steps: int = 100) -> float:
    """What a user writes: v ← JᵀJv/‖JᵀJv‖ for ``steps`` steps, then ‖Jv‖ (a lower bound)."""
    v = torch.randn(op.x.shape, dtype=op.x.dtype, generator=torch.Generator().manual_seed(0))
    for _ in range(steps):
        v = op.rmatvec(op.matvec(v))
        v = v / v.norm()
    return float(op.matvec(v).norm())


def eigvalsh_top(w: torch.Tensor, n: int) -> float:
    """gradcore's σ_max before issue 19: eigvalsh of every one-sided frequency's Gram matrix (O(C³) each)."""
    return conv._top_singular_value(conv.frequency_response(w, n, n, onesided=True))


def bench_conv(channels: list[int], n: int, numpy_max_c: int) -> list[dict]:
    """σ_max of a circular 3×3 conv by iteration per frequency, against all σ (NumPy, gradcore), the former
    eigvalsh path and Gram iteration; ``numpy_max_c`` bounds the sizes where the O(C³)-per-frequency methods run
    more than once."""
    rows = []
    for c in channels:
        layer = conv.standard_conv(c, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
        w = layer.weight.detach()
        top = conv.top_frequency(w, n, n)
        row = {"channels": c, "n": n, "width": c * n * n,
               "sigma": top.sigma, "candidates": top.candidates, "blocks": top.blocks, "steps": top.steps}
        big = c > numpy_max_c
        start = time.perf_counter()
        old = eigvalsh_top(w, n)
        row["eigvalsh_rel"] = abs(top.sigma / old - 1)
        methods = {"max_s": lambda: conv.conv_spectral_norm(w, n, n)}
        if big:
            row["eigvalsh_s"] = time.perf_counter() - start
        else:
            wn = w.permute(2, 3, 1, 0).numpy()
            ref = numpy_svals(wn, n)
            ours = conv.conv_singular_values(w, n, n).numpy()
            row["all_rel"] = float(np.max(np.abs(ours - np.sort(ref.ravel())[::-1])) / ref.max())
            row["max_rel"] = abs(top.sigma / float(ref.max()) - 1)
            bounds = conv.gram_upper_bound(conv.frequency_response(w, n, n, onesided=True), 12,
                                           target=top.sigma * (1 + 1e-6))
            row["gram_iters"] = len(bounds) - 1
            row["gram_rel"] = bounds[-1] / top.sigma - 1
            methods |= {"eigvalsh_s": lambda: eigvalsh_top(w, n), "all_s": lambda: conv.conv_singular_values(w, n, n),
                        "numpy_s": lambda: numpy_svals(wn, n),
                        "gram_s": lambda: conv.gram_upper_bound(conv.frequency_response(w, n, n, onesided=True), 12,
                                                                target=top.sigma * (1 + 1e-6))}
        row.update(timed_together(methods))
        rows.append(row)
        print(f"conv {c}×{n}²: {row}", flush=True)
    return rows


def bench_padding(channels: list[int], n: int = 32) -> list[dict]:
    rows = []
    for c in channels:
        g = torch.Generator().manual_seed(0)
        circ = conv.standard_conv(c, 3, dtype=F64, generator=g)
        for stride in (1, 2):
            zero = nn.Conv2d(c, c, 3, stride=stride, padding=1, bias=False, dtype=F64)
            with torch.no_grad():
                zero.weight.copy_(circ.weight)
            zero.weight.requires_grad_(False)
            x = torch.zeros(1, c, n, n, dtype=F64)
            start = time.perf_counter()
            r = spectral.operator_singular_values(zero, x, 1)
            row = {"channels": c, "n": n, "stride": stride, "zero_sigma": float(r.values[0]),
                   "circular_sigma": conv.conv_spectral_norm(circ, n, n), "steps": r.steps,
                   "seconds": time.perf_counter() - start}
            op = jacobian.jacobian_operator(zero, x)
            start = time.perf_counter()
            row["power_sigma"] = power_iteration(op)
            row["power_s"] = time.perf_counter() - start
            for name, tol in (("bracket", 1e-6), ("bracket_fast", 1e-2)):
                start = time.perf_counter()
                b = conv.conv_sigma_bracket(zero, n, n, lanczos_tol=tol)
                row[f"{name}_s"] = time.perf_counter() - start
                row[f"{name}_lower"], row[f"{name}_upper"], row[f"{name}_iters"] = b.lower, b.upper, b.gram_iters
            rows.append(row)
            print(f"padding {rows[-1]}", flush=True)
    return rows


def bench_torch_spectral_norm(channels: list[int], n: int = 32) -> list[dict]:
    """torch's spectral_norm divides the kernel by σ_max of weight.reshape(c_out, -1)."""
    rows = []
    for c in channels:
        plain_layer = conv.standard_conv(c, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
        sn = torch.nn.utils.parametrizations.spectral_norm(
            conv.standard_conv(c, 3, dtype=F64, generator=torch.Generator().manual_seed(0)), n_power_iterations=1)
        x = torch.randn(1, c, n, n, dtype=F64)
        w = plain_layer.weight.detach()
        reshaped = float(torch.linalg.matrix_norm(w.reshape(c, -1), ord=2))
        rows.append({"channels": c, "n": n, "reshaped_sigma": reshaped,
                     "operator_sigma": conv.conv_spectral_norm(w, n, n),
                     **timed_together({"sn_forward_s": lambda: sn(x),   # training mode: one power iteration a call
                                       "plain_forward_s": lambda: plain_layer(x),
                                       "ours_s": lambda: conv.conv_spectral_norm(w, n, n)})})
        print(f"spectral_norm {rows[-1]}", flush=True)
    return rows


def suite_times(path: Path) -> list[dict]:
    doc = results.read(path)
    topics: dict[str, float] = {}
    for c in doc["claims"]:
        topics[c["topic"]] = topics.get(c["topic"], 0.0) + sum(d["duration_s"] for d in c["devices"].values())
    return [{"topic": t, "seconds": s} for t, s in sorted(topics.items(), key=lambda kv: -kv[1])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("reports/results.json"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test, not a report)")
    parser.add_argument("--only", default="", help="comma-separated sections to run (jacobian, conv, padding, "
                        "spectral_norm, suite); the others are left empty — for a partial run written elsewhere")
    parser.add_argument("--threads", type=int, default=0, help="torch's intra-op threads for every method "
                        "(default: torch's choice); on a CPU shared with other jobs, 1 avoids thread-pool stalls")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be ≥ 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    from report import figure, markdown  # noqa: PLC0415  (benchmarks/report.py, beside this file)

    quick = args.quick
    only = set(args.only.split(",")) if args.only else {"jacobian", "conv", "padding", "spectral_norm", "suite"}
    start = time.perf_counter()
    doc = {"environment": {"device": platform.processor() or platform.machine(), "torch": torch.__version__,
                           "numpy": np.__version__, "threads": torch.get_num_threads(),
                           "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
                           "load_average_before": os.getloadavg()[0]}}
    sections = {
        "jacobian": lambda: bench_jacobian([64, 256] if quick else [256, 512, 1024, 2048, 4096], [2] if quick else [16, 64]),
        "conv": lambda: bench_conv([8, 16] if quick else [16, 64, 256], 16 if quick else 32,
                                   numpy_max_c=16 if quick else 64),
        "padding": lambda: bench_padding([4] if quick else [16, 64], 8 if quick else 32),
        "spectral_norm": lambda: bench_torch_spectral_norm([4, 8] if quick else [16, 64, 256], 8 if quick else 32),
        "suite": lambda: suite_times(args.results) if args.results.is_file() else [],
    }
    for name, run in sections.items():
        doc[name] = run() if name in only else []
    doc["environment"]["load_average_after"] = os.getloadavg()[0]
    doc["environment"]["wall_s"] = time.perf_counter() - start
    results.write_text(json.dumps(doc, indent=1) + "\n", args.out / "benchmarks.json")
    fig = figure(doc, args.out / "figures" / "bench-time-vs-width.png")
    results.write_text(markdown(doc, fig.relative_to(args.out)), args.out / "benchmarks.md")
    print(f"wrote {args.out / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

