"""Speed of gradcore's measuring tools, and where the theorem suite spends its time.

Timed with ``torch.utils.benchmark`` (warm-up, adaptive repeats, median). Writes
``reports/benchmarks.json`` and ``reports/benchmarks.md``:

* spectral norm of an MLP's input-output Jacobian: dense (``jacrev`` + ``svdvals``)
  vs matrix-free power iteration on jvp/vjp (``gradcore.spectral.operator_spectral_norm``);
* singular values of a circular convolution: 2-D DFT (``gradcore.conv``) vs the SVD of
  the dense Jacobian;
* the theorem suite: wall time per topic, read from a results file.

Run: ``python benchmarks/run.py [--results reports/results.json] [--device cpu|cuda]``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
from torch.utils import benchmark

from gradcore import conv, jacobian, spectral
from gradcore.verify import results
from gradcore.verify.views import num, table


def timed(stmt, label: str, sub_label: str, description: str) -> benchmark.Measurement:
    timer = benchmark.Timer(stmt="f()", globals={"f": stmt}, label=label,
                            sub_label=sub_label, description=description, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=0.5)


def mlp(width: int, device: str):
    g = torch.Generator().manual_seed(0)
    Ws = [(torch.randn(width, width, generator=g, dtype=torch.float64) / width ** 0.5).to(device) for _ in range(3)]

    def f(x: torch.Tensor) -> torch.Tensor:
        for W in Ws:
            x = torch.tanh(W @ x)
        return x
    return f, torch.randn(width, generator=g, dtype=torch.float64).to(device)


def bench_spectral(device: str) -> list[dict]:
    rows = []
    for width in (64, 256, 1024):
        f, x = mlp(width, device)
        dense = timed(lambda: spectral.spectral_norm(jacobian.jacobian(f, x)), "MLP Jacobian σ_max",
                      f"width {width}", "dense jacrev + svdvals")
        free = timed(lambda: spectral.operator_spectral_norm(f, x, iters=100, tol=1e-6), "MLP Jacobian σ_max",
                     f"width {width}", "matrix-free power iteration")
        agree = abs(spectral.operator_spectral_norm(f, x, iters=100, tol=1e-6)
                    / spectral.spectral_norm(jacobian.jacobian(f, x)) - 1)
        rows.append({"case": f"width {width}", "dense_s": dense.median, "matrix_free_s": free.median,
                     "relative_difference": agree})
    return rows


def bench_conv(device: str) -> list[dict]:
    rows = []
    for channels, size in ((4, 8), (8, 16), (16, 16)):
        layer = conv.standard_conv(channels, 3, padding_mode="circular", device=device, dtype=torch.float64)
        x = torch.randn(1, channels, size, size, dtype=torch.float64, device=device)
        fft = timed(lambda: conv.conv_singular_values(layer, size, size), "conv singular values",
                    f"C={channels}, {size}×{size}", "2-D DFT")
        dense = timed(lambda: spectral.singular_values(jacobian.jacobian(layer, x)), "conv singular values",
                      f"C={channels}, {size}×{size}", "dense Jacobian SVD")
        rows.append({"case": f"C={channels}, {size}×{size}", "fft_s": fft.median, "dense_s": dense.median})
    return rows


def suite_times(path: Path) -> list[dict]:
    doc = results.read(path)
    topics: dict[str, float] = {}
    for c in doc["claims"]:
        topics[c["topic"]] = topics.get(c["topic"], 0.0) + sum(d["duration_s"] for d in c["devices"].values())
    return [{"topic": t, "seconds": s} for t, s in sorted(topics.items(), key=lambda kv: -kv[1])]


def markdown(doc: dict) -> str:
    env = doc["environment"]
    sp = [[r["case"], num(r["dense_s"] * 1e3), num(r["matrix_free_s"] * 1e3), num(r["dense_s"] / r["matrix_free_s"]),
           num(r["relative_difference"])] for r in doc["spectral"]]
    cv = [[r["case"], num(r["fft_s"] * 1e3), num(r["dense_s"] * 1e3), num(r["dense_s"] / r["fft_s"])]
          for r in doc["conv"]]
    st = [[r["topic"], num(r["seconds"])] for r in doc["suite"]]
    return "\n".join([
        "# gradcore benchmarks", "",
        f"Device: {env['device']} · torch {env['torch']} · {env['threads']} threads · median of "
        "`torch.utils.benchmark` adaptive runs.", "",
        "## Spectral norm of a 3-layer tanh MLP's Jacobian (float64)", "",
        table(["case", "dense (ms)", "matrix-free (ms)", "speed-up", "relative difference"], sp), "",
        "Speed-up below 1 means the dense Jacobian was faster: power iteration (≤ 100 jvp/vjp pairs, "
        "tol 1e-6) pays only where the Jacobian is too large to build.", "",
        "## Singular values of a circular 3×3 convolution (float64)", "",
        table(["case", "2-D DFT (ms)", "dense Jacobian SVD (ms)", "speed-up"], cv), "",
        "## Theorem suite: wall time by topic (from the results file)", "",
        table(["topic", "seconds"], st), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("reports/results.json"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks: error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or platform.machine()
    doc = {"environment": {"device": name, "torch": torch.__version__, "threads": torch.get_num_threads()},
           "spectral": bench_spectral(args.device), "conv": bench_conv(args.device),
           "suite": suite_times(args.results)}
    suffix = "" if args.device == "cpu" else f"-{args.device}"
    results.write_text(json.dumps(doc, indent=1) + "\n", args.out / f"benchmarks{suffix}.json")
    results.write_text(markdown(doc), args.out / f"benchmarks{suffix}.md")
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
