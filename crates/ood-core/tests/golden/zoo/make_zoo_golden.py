#!/usr/bin/env python3
"""Golden scores for the detector zoo (crates/ood-core/tests/zoo_golden.rs).

Reference: pytorch-ood 0.4.0 (with torch, scikit-learn) from PyPI. Run from the repository root:

    python/.venv-test/bin/python crates/ood-core/tests/golden/zoo/make_zoo_golden.py

(python/.venv-test comes from `bash scripts/setup-python.sh --pytest`; add
`pip install --no-deps pytorch-ood==0.4.0 torchvision==0.26.0` there.)

Fixed, seeded small arrays: training features (N x D, non-negative like post-ReLU pooled
features, no ties), labels, the last layer W (K x D), b (K), and test features (ID-like rows
and shifted OOD-like rows). For every method the expected value is "higher = in-distribution",
i.e. minus pytorch-ood's outlier score, after the conversions written below where our code
follows the method's authors instead of pytorch-ood (docs/detectors.md says which and why).
Where pytorch-ood computes in float32 (DICE, ViM) the expected value is a float64 NumPy
re-expression of the same code, asserted here to agree with pytorch-ood to 1e-4 (ViM: 2e-3, float32 eigenvectors).
"""
import json
import os

import numpy as np
import pytorch_ood
import torch
from pytorch_ood.detector import (ASH, DICE, GEN, KNN, RMD, SCALE, SHE, EnergyBased, Entropy,
                                  GradNorm, KLMatching, Mahalanobis, MaxSoftmax, ReAct, ViM)

HERE = os.path.dirname(os.path.abspath(__file__))
assert pytorch_ood.__version__ == "0.4.0", pytorch_ood.__version__
torch.set_default_dtype(torch.float64)

rng = np.random.default_rng(20231)
N, D, K, M = 240, 16, 5, 40
centres = np.abs(rng.normal(0, 1.0, (K, D))) * 1.5
# a head that roughly separates the classes, like a trained one
W = 0.4 * (centres - centres.mean(0)) + rng.normal(0, 0.2, (K, D))
b = rng.normal(0, 0.3, K)
y = np.repeat(np.arange(K), N // K)
train = np.abs(centres[y] + rng.normal(0, 0.5, (N, D)))
test_id = np.abs(centres[rng.integers(0, K, M // 2)] + rng.normal(0, 0.5, (M // 2, D)))
test_ood = np.abs(rng.normal(0.8, 1.2, (M // 2, D)))
test = np.vstack([test_id, test_ood])
T = torch.from_numpy


def head(z):
    return z.flatten(1) @ T(W).T + T(b)


def logits_of(x):
    return x @ W.T + b


train_logits, test_logits = logits_of(train), logits_of(test)
# the head must classify every class correctly at least once (SHE)
pred = train_logits.argmax(1)
assert all(((pred == c) & (y == c)).any() for c in range(K))


def close(a, b_, rtol):
    a, b_ = np.asarray(a, float), np.asarray(b_, float)
    err = np.max(np.abs(a - b_) / np.maximum(np.abs(b_), 1.0))
    assert err < rtol, err


def lse(z):
    m = z.max(1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


out = {}
# energy, MSP: pytorch-ood's static scores are minus ours
out["energy"] = {"params": {}, "scores": (-EnergyBased.score(T(test_logits))).tolist()}
out["msp"] = {"params": {}, "scores": (-MaxSoftmax.score(T(test_logits))).tolist()}

# ReAct at the paper's p = 90 (pytorch-ood takes fractions)
for p in (90.0, 60.0):
    r = ReAct(backbone=None, head=head, percentile=p / 100).fit_feature_maps(T(train), T(y))
    out[f"react@{p:g}"] = {"params": {"percentile": p}, "threshold": r.threshold,
                            "scores": (-r.predict_feature_maps(T(test))).tolist()}

# ASH and SCALE need 4-d maps: pooled features as B x D x 1 x 1
for variant in ("ash-p", "ash-b", "ash-s"):
    for p in (65.0, 90.0):
        a = ASH(backbone=None, head=head, variant=variant, percentile=p / 100)
        s = -a.predict_feature_maps(T(test)[:, :, None, None])
        out[f"{variant.replace('-', '_')}@{p:g}"] = {"params": {"percentile": p}, "scores": s.tolist()}
for p in (65.0, 85.0):
    sc = SCALE(backbone=None, head=head, percentile=p / 100)
    out[f"scale@{p:g}"] = {"params": {"percentile": p},
                            "scores": (-sc.predict_feature_maps(T(test)[:, :, None, None])).tolist()}

# DICE: pytorch-ood computes in float32; expected = the same steps in float64
for p in (90.0, 50.0):
    torch.set_default_dtype(torch.float32)
    d = DICE(encoder=None, w=T(W), b=T(b), p=p / 100).fit_features(T(train).float(), T(y))
    ref32 = -d.predict_features(T(test).float()).double().numpy()
    torch.set_default_dtype(torch.float64)
    contrib = train.mean(0)[None, :] * W
    thr = np.percentile(contrib.ravel(), p)
    Wm = np.where(contrib > thr, W, 0.0)
    ours = lse(test @ Wm.T + b)
    close(ours, ref32, 1e-4)
    out[f"dice@{p:g}"] = {"params": {"percentile": p}, "threshold": thr, "scores": ours.tolist()}

# GEN: authors sum over the top M, pytorch-ood averages (factor M); M = None is all K here
for gamma in (0.1, 1.0):
    g = -GEN.score(T(test_logits), gamma=gamma, M=None).numpy() * K
    p_sorted = -np.sort(-softmax(test_logits), 1)
    ours = -np.sum(p_sorted ** gamma * (1 - p_sorted) ** gamma, 1)
    # pytorch-ood clamps p to [1e-7, 1 - 1e-7] (p^gamma of tiny p is not negligible): compare
    # only rows where the clamp does nothing
    free = ((softmax(test_logits) > 1e-7) & (softmax(test_logits) < 1 - 1e-7)).all(1)
    assert free.sum() >= M // 2, free.sum()
    close(ours[free], g[free], 1e-9)
    out[f"gen@{gamma:g}"] = {"params": {"gamma": gamma, "m": 100}, "scores": ours.tolist()}

out["entropy"] = {"params": {}, "scores": (-Entropy.score(T(test_logits))).tolist()}

klm = KLMatching(None).fit_logits(T(train_logits))
out["klm"] = {"params": {}, "scores": (-klm.predict_logits(T(test_logits))).tolist()}

for k in (1, 10, 50):
    kn = KNN(None, k=k).fit_features(T(train), T(y))
    out[f"knn@{k}"] = {"params": {"k": k}, "scores": (-kn.predict_features(T(test))).tolist()}

# ViM: pytorch-ood in float32; expected = the authors' steps in float64 (same as pytorch-ood's)
for dim in (8, 12):
    torch.set_default_dtype(torch.float32)
    v = ViM(None, d=dim, w=T(W), b=T(b)).fit_features(T(train).float(), T(y))
    ref32 = -v.predict_features(T(test).float()).double().numpy()
    torch.set_default_dtype(torch.float64)
    u = -np.linalg.pinv(W) @ b
    X = train - u
    vals, vecs = np.linalg.eigh(X.T @ X / N)
    NS = vecs[:, np.argsort(-vals)][:, dim:]
    alpha = train_logits.max(1).mean() / np.linalg.norm(X @ NS, axis=1).mean()
    ours = lse(test_logits) - alpha * np.linalg.norm((test - u) @ NS, axis=1)
    # float32 eigenvectors of a 16 x 16 covariance: agreement to ~3e-4 is what f32 gives
    close(ours, ref32, 2e-3)
    out[f"vim@{dim}"] = {"params": {"dim": dim}, "alpha": alpha, "scores": ours.tolist()}

# Mahalanobis (Lee et al., 1/N covariance, score max_c -d^2). pytorch-ood leaves the covariance
# undivided (+1e-6 ridge) and returns min_c 0.5 d'^2: ours ~= -2 N * pytorch-ood.
mu = np.stack([train[y == c].mean(0) for c in range(K)])
cov = sum((train[y == c] - mu[c]).T @ (train[y == c] - mu[c]) for c in range(K)) / N
prec = np.linalg.inv(cov)
md = np.stack([np.einsum("ij,jk,ik->i", test - mu[c], prec, test - mu[c]) for c in range(K)], 1)
maha = -md.min(1)
close(maha, -2 * N * Mahalanobis(None).fit_features(T(train), T(y)).predict_features(T(test)).numpy(), 1e-4)
out["mahalanobis_features"] = {"params": {}, "scores": maha.tolist()}

# RMDS (Ren et al., 1/N covariances). pytorch-ood: undivided covariances, so ours ~= -N * its.
mu0 = train.mean(0)
prec0 = np.linalg.inv((train - mu0).T @ (train - mu0) / N)
md0 = np.einsum("ij,jk,ik->i", test - mu0, prec0, test - mu0)
rmds = -(md - md0[:, None]).min(1)
close(rmds, -N * RMD(None).fit_features(T(train), T(y)).predict_features(T(test)).numpy(), 1e-4)
out["rmds"] = {"params": {}, "scores": rmds.tolist()}

she = SHE(encoder=None, head=head).fit_features(T(train), T(y))
out["she"] = {"params": {}, "scores": (-she.predict_features(T(test))).tolist()}

# GradNorm on the weight of a Linear head; the authors' all-one target is K times pytorch-ood's mean
lin = torch.nn.Linear(D, K)
with torch.no_grad():
    lin.weight.copy_(T(W))
    lin.bias.copy_(T(b))
for t in (1.0, 2.0):
    gn = GradNorm(lin, param_filter=lambda n: n == "weight", temperature=t)
    out[f"gradnorm@{t:g}"] = {"params": {"temperature": t},
                               "scores": (-K * gn.predict(T(test))).tolist()}

data = {
    "reference": "pytorch-ood 0.4.0, torch " + torch.__version__ + ", numpy " + np.__version__,
    "train": train.tolist(), "labels": y.tolist(), "weight": W.tolist(), "bias": b.tolist(),
    "test": test.tolist(), "expected": out,
}
with open(os.path.join(HERE, "zoo.json"), "w") as f:
    json.dump(data, f, indent=0)
print("wrote", len(out), "cases")
