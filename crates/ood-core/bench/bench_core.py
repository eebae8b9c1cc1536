#!/usr/bin/env python3
"""Benchmark: all OOD metrics on 1,000,000 ID + 1,000,000 OOD scores, ood-core vs scikit-learn,
same arrays, same run, same machine. Results go into docs/bench-core.md.

Run from the repository root (after scripts/setup.sh, which creates .venv):

    .venv/bin/python crates/ood-core/bench/bench_core.py [--n 1000000] [--repeats 5]

It builds the Rust side in release mode, writes the two score arrays as float32 .npy (what a
model export gives), then times:
  * scikit-learn, the paper convention: roc_auc_score, average_precision_score (ID positive and
    OOD positive), the code of record's FPR at 95% TPR (re-expressed in make_golden.py), and
    roc_curve for the detection error;
  * scikit-learn, the ood-positive convention: roc_curve (FPR95 and detection error),
    roc_auc_score, precision_recall_curve + auc twice;
  * ood-core's `metrics::evaluate` for each convention (validation + sort + sweep), in-process,
    via the `bench_metrics` example;
  * the whole `eood metrics --format json` command (process start, reading both files, output).
Every time is the best of `--repeats` runs; file loading is excluded except for the CLI.
The metric values of both sides are compared (|difference| < 1e-9) before any time is printed.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import sklearn
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "crates", "ood-core", "tests", "golden"))
from make_golden import paper_fpr  # noqa: E402


def sklearn_paper(id_s, ood_s):
    y = np.r_[np.ones(len(id_s)), np.zeros(len(ood_s))]
    s = np.r_[id_s, ood_s]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "fpr": float(paper_fpr(id_s, ood_s, 0.95)),
        "auroc": roc_auc_score(y, s),
        "aupr_in": average_precision_score(y, s),
        "aupr_out": average_precision_score(1 - y, -s),
        "detection_error": float(np.min(0.5 * (1 - tpr) + 0.5 * fpr)),
    }


def sklearn_ood_positive(id_s, ood_s):
    y = np.r_[np.ones(len(id_s)), np.zeros(len(ood_s))]
    s = np.r_[id_s, ood_s]
    fpr, tpr, _ = roc_curve(1 - y, -s, drop_intermediate=False)
    p_in, r_in, _ = precision_recall_curve(y, s)
    p_out, r_out, _ = precision_recall_curve(1 - y, -s)
    return {
        "fpr": float(fpr[np.argmax(tpr >= 0.95)]),
        "auroc": roc_auc_score(y, s),
        "aupr_in": auc(r_in, p_in),
        "aupr_out": auc(r_out, p_out),
        # ID positive and OOD positive give the same minimum
        "detection_error": float(np.min(0.5 * (1 - tpr) + 0.5 * fpr)),
    }


def best_of(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="scores per set")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    print("building (release)...", file=sys.stderr)
    cargo = ["cargo", "build", "--release", "--quiet"]
    subprocess.run(cargo + ["-p", "ood-core", "--example", "bench_metrics"], cwd=ROOT, check=True)
    subprocess.run(cargo + ["-p", "eood", "--no-default-features"], cwd=ROOT, check=True)
    example = os.path.join(ROOT, "target", "release", "examples", "bench_metrics")
    eood = os.path.join(ROOT, "target", "release", "eood")

    rng = np.random.default_rng(2020)
    # energy-like scores: ID higher on average; float32 like a model export
    id_s = rng.normal(8.0, 2.0, args.n).astype(np.float32)
    ood_s = rng.normal(5.0, 2.5, args.n).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        id_p, ood_p = os.path.join(d, "id.npy"), os.path.join(d, "ood.npy")
        np.save(id_p, id_s)
        np.save(ood_p, ood_s)
        id64, ood64 = id_s.astype(np.float64), ood_s.astype(np.float64)

        rust = json.loads(subprocess.run([example, id_p, ood_p, str(args.repeats)], check=True,
                                         capture_output=True, text=True).stdout)
        sk = {}
        sk["paper"] = best_of(lambda: sklearn_paper(id64, ood64), args.repeats)
        sk["ood-positive"] = best_of(lambda: sklearn_ood_positive(id64, ood64), args.repeats)
        cli_cmd = [eood, "metrics", "--id", id_p, "--ood", ood_p, "--format", "json"]
        cli_t, cli_out = best_of(lambda: subprocess.run(cli_cmd, check=True, capture_output=True, text=True).stdout,
                                 args.repeats)
        cli = json.loads(cli_out)

    for conv in ("paper", "ood-positive"):
        ref, got = sk[conv][1], rust[conv]["metrics"]
        for k, v in ref.items():
            if abs(v - got[k]) > 1e-9:
                sys.exit(f"MISMATCH {conv} {k}: scikit-learn {v!r}, ood-core {got[k]!r}")
    for k in ("auroc", "aupr_in", "aupr_out", "detection_error"):
        if abs(cli[k] - 100 * sk["paper"][1][k]) > 1e-7:
            sys.exit(f"MISMATCH cli {k}: {cli[k]} vs {100 * sk['paper'][1][k]}")
    if abs(cli["fpr95"] - 100 * sk["paper"][1]["fpr"]) > 1e-7:
        sys.exit("MISMATCH cli fpr95")

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# {args.n:,} ID + {args.n:,} OOD float32 scores; best of {args.repeats}")
    print(f"# machine: {cpu}, {os.cpu_count()} logical CPUs, load average {load:.2f}; "
          f"numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    print("| convention | scikit-learn (s) | ood-core (s) | speed-up |")
    print("|---|---:|---:|---:|")
    for conv in ("paper", "ood-positive"):
        s_t, r_t = sk[conv][0], rust[conv]["best_s"]
        print(f"| {conv} | {s_t:.3f} | {r_t:.3f} | {s_t / r_t:.1f}x |")
    print(f"| `eood metrics` whole command (paper) | {sk['paper'][0]:.3f} | {cli_t:.3f} | "
          f"{sk['paper'][0] / cli_t:.1f}x |")
    m = sk["paper"][1]
    print(f"# values agree to 1e-9; paper convention: FPR95 {100 * m['fpr']:.4f}, AUROC {100 * m['auroc']:.4f}, "
          f"AUPR-In {100 * m['aupr_in']:.4f}, AUPR-Out {100 * m['aupr_out']:.4f}, "
          f"detection error {100 * m['detection_error']:.4f}")


if __name__ == "__main__":
    main()
