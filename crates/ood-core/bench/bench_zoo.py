#!/usr/bin/env python3
"""Speed of the detector zoo against its peers, on the same arrays in one run.

1. Exact KNN: 40,000 queries against 55,000 training features (D = 64 and 128, k = 50),
   energy-ood (`zoo_bench knn`) vs faiss-cpu `IndexFlatL2` (what the KNN paper uses), both on
   L2-normalised float32 input and the same number of threads; checks that both find the same
   neighbours.
2. Fit + score of every method with its defaults on benchmark-sized features (N = 50,000
   training, 20,000 test, D = 128, K = 10) vs pytorch-ood 0.4.0 on the same features, each in
   its own process so that peak memory (max RSS) is its own.

Rounds alternate between the tools and the medians are reported, because the machine is
shared. Run from the repository root (about 5 minutes on 2 loaded cores):

    cargo build --release -p ood-core --example zoo_bench
    python/.venv-test/bin/python crates/ood-core/bench/bench_zoo.py [--rounds 3] [--threads 2]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

BIN = os.environ.get("ZOO_BENCH_BIN", os.path.join("target", "release", "examples", "zoo_bench"))
METHODS = ["energy", "msp", "maxlogit", "react", "ash_p", "ash_b", "ash_s", "scale", "dice",
           "gen", "entropy", "klm", "knn", "vim", "mahalanobis_features", "rmds", "she",
           "gradnorm"]


def features(rng, n, d, centres, noise=0.6):
    """Clustered non-negative features, like pooled post-ReLU activations."""
    y = rng.integers(0, len(centres), n)
    return np.abs(centres[y] + rng.normal(0, noise, (n, d))).astype(np.float32), y


def faiss_knn(train, queries, k):
    import faiss
    t = time.perf_counter()
    index = faiss.IndexFlatL2(train.shape[1])
    index.add(train / np.linalg.norm(train, axis=1, keepdims=True))
    dist, idx = index.search(queries / np.linalg.norm(queries, axis=1, keepdims=True), k)
    return time.perf_counter() - t, idx


def ours_knn(dir_, k):
    out = os.path.join(dir_, "idx.npy")
    r = subprocess.run([BIN, "knn", os.path.join(dir_, "train.npy"),
                        os.path.join(dir_, "queries.npy"), str(k), out],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)["seconds"], np.load(out).reshape(-1, k)


def knn_bench(args, rng, tmp):
    rows = []
    for d in (64, 128):
        centres = np.abs(rng.normal(0, 1, (10, d))) * 1.5
        train, _ = features(rng, 55_000, d, centres)
        queries, _ = features(rng, 40_000, d, centres)
        np.save(os.path.join(tmp, "train.npy"), train)
        np.save(os.path.join(tmp, "queries.npy"), queries)
        ft, ot = [], []
        for _ in range(args.rounds):
            t, fi = faiss_knn(train, queries, args.k)
            ft.append(t)
            t, oi = ours_knn(tmp, args.k)
            ot.append(t)
        differ = [i for i, (a, b_) in enumerate(zip(fi, oi)) if set(a) != set(b_)]
        # where the sets differ, both k-th distances in float64: a float32 near-tie, or an error?
        tn = (train / np.linalg.norm(train, axis=1, keepdims=True)).astype(np.float64)
        qn = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float64)
        kth = lambda i, idx: np.sort(np.linalg.norm(tn[idx[i]] - qn[i], axis=1))[-1]
        gap = max([abs(kth(i, fi) - kth(i, oi)) for i in differ], default=0.0)
        rows.append({"d": d, "faiss_s": float(np.median(ft)), "ours_s": float(np.median(ot)),
                     "speedup": float(np.median(ft) / np.median(ot)),
                     "same_neighbour_sets": 1 - len(differ) / len(queries),
                     "max_kth_distance_gap_where_sets_differ": float(gap)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def peer_methods(train, y, W, b, test):
    """pytorch-ood 0.4.0: key -> a function that fits (where the method fits) and scores
    every method with its defaults on torch CPU tensors (float32 features and head, int64
    labels). Also used by python/bench/bench_detectors.py, on the same arrays."""
    import torch
    from pytorch_ood.detector import (ASH, DICE, GEN, KNN, RMD, SCALE, SHE, EnergyBased,
                                      Entropy, GradNorm, KLMatching, Mahalanobis, MaxLogit,
                                      MaxSoftmax, ReAct, ViM)
    W, b = W.float(), b.float()
    head = lambda z: z.flatten(1) @ W.T + b
    lin = torch.nn.Linear(W.shape[1], W.shape[0])
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
    t4 = test[:, :, None, None]
    m = {
        "energy": lambda: EnergyBased.score(head(test)),
        "msp": lambda: MaxSoftmax.score(head(test)),
        "maxlogit": lambda: MaxLogit.score(head(test)),
        "react": lambda: ReAct(None, head, percentile=0.9).fit_feature_maps(train, y)
        .predict_feature_maps(test),
    }
    for v, p in (("ash-p", 0.9), ("ash-b", 0.65), ("ash-s", 0.9)):
        m[v.replace("-", "_")] = (lambda v=v, p=p: ASH(None, head, variant=v, percentile=p)
                                  .predict_feature_maps(t4))
    m.update({
        "scale": lambda: SCALE(None, head, percentile=0.85).predict_feature_maps(t4),
        "dice": lambda: DICE(None, W, b, p=0.9).fit_features(train, y).predict_features(test),
        "gen": lambda: GEN.score(head(test), gamma=0.1, M=100),
        "entropy": lambda: Entropy.score(head(test)),
        "klm": lambda: KLMatching(None).fit_logits(head(train)).predict_logits(head(test)),
        "knn": lambda: KNN(None, k=50).fit_features(train, y).predict_features(test),
        "vim": lambda: ViM(None, d=W.shape[1] // 2, w=W, b=b).fit_features(train, y)
        .predict_features(test),
        "mahalanobis_features": lambda: Mahalanobis(None).fit_features(train, y)
        .predict_features(test),
        "rmds": lambda: RMD(None).fit_features(train, y).predict_features(test),
        "she": lambda: SHE(None, head).fit_features(train, y).predict_features(test),
        "gradnorm": lambda: GradNorm(lin, param_filter=lambda n: n == "weight",
                                     micro_batch_size=1024).predict(test),
    })
    assert list(m) == METHODS
    return m


def peer_zoo(dir_):
    """pytorch-ood 0.4.0: fit + score every method with defaults (run in its own process)."""
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    ld = lambda n: torch.from_numpy(np.load(os.path.join(dir_, n)))
    train, y, W, b, test = (ld("train.npy"), ld("train_labels.npy"), ld("weight.npy"),
                            ld("bias.npy"), ld("test.npy"))
    times = {}
    for key, f in peer_methods(train, y, W, b, test).items():
        t = time.perf_counter()
        s = f()
        assert len(s) == len(test)
        times[key] = time.perf_counter() - t
    times["total"] = sum(times.values())
    times["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(times))


def zoo_arrays(rng):
    """The zoo benchmark's arrays: clustered features of K = 10 classes (D = 128), 50,000
    training and 20,000 test rows (half from the clusters, half not), a head W, b."""
    d, k = 128, 10
    centres = np.abs(rng.normal(0, 1, (k, d))) * 1.5
    train, y = features(rng, 50_000, d, centres)
    test_id, _ = features(rng, 10_000, d, centres)
    test_ood = np.abs(rng.normal(0.8, 1.2, (10_000, d))).astype(np.float32)
    W = (0.4 * (centres - centres.mean(0)) + rng.normal(0, 0.2, (k, d))).astype(np.float32)
    b = rng.normal(0, 0.3, k).astype(np.float32)
    return {"train": train, "train_labels": y.astype(np.int64), "weight": W, "bias": b,
            "test": np.vstack([test_id, test_ood])}


def zoo_bench(args, rng, tmp):
    for name, a in zoo_arrays(rng).items():
        np.save(os.path.join(tmp, name + ".npy"), a)
    peer, ours = [], []
    for _ in range(args.rounds):
        r = subprocess.run([sys.executable, __file__, "--peer-zoo", tmp], check=True,
                           capture_output=True, text=True)
        peer.append(json.loads(r.stdout.strip().splitlines()[-1]))
        r = subprocess.run([BIN, "zoo", tmp], check=True, capture_output=True, text=True)
        ours.append(json.loads(r.stdout))
    med = lambda runs, key: float(np.median([x[key] for x in runs]))
    table = {m: {"pytorch_ood_s": med(peer, m), "ours_s": med(ours, m),
                 "speedup": med(peer, m) / med(ours, m)} for m in METHODS + ["total"]}
    table["peak_mib"] = {"pytorch_ood": med(peer, "peak_kib") / 1024,
                         "ours": med(ours, "peak_kib") / 1024}
    print(json.dumps(table, indent=1), flush=True)
    return table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--only", choices=["knn", "zoo"])
    ap.add_argument("--peer-zoo")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    if args.peer_zoo:
        return peer_zoo(args.peer_zoo)
    import faiss
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(7)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        res = {"threads": args.threads, "rounds": args.rounds, "loadavg_start": load}
        if args.only != "zoo":
            res["knn"] = knn_bench(args, rng, tmp)
        if args.only != "knn":
            res["zoo"] = zoo_bench(args, rng, tmp)
        res["loadavg_end"] = os.getloadavg()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
