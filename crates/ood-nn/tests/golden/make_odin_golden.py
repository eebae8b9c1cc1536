"""Golden files for crates/ood-nn/tests/odin_golden.rs (ODIN and Mahalanobis input preprocessing).

Run from the repo root with an importable PyTorch 2.11 (`EOOD_TORCH=full bash scripts/setup-python.sh`):

    .venv/bin/python crates/ood-nn/tests/golden/make_odin_golden.py

Uses the random WideResNet-10-1 of make_golden.py (wrn10_zip.pt, eval mode) and writes, next to
this script:
  odin_train_x.npy  120 uint8 images 16 x 16 x 3 (seeded), odin_train_y.npy their labels (int64,
                    12 per class): the "training set" the Mahalanobis class means and tied
                    covariance are fitted on
  odin_test_x.npy   8 uint8 images 16 x 16 x 3 to score
  odin_golden.json  for the test images, normalized with the CIFAR mean/std:
                    - ODIN, written out from the energy-OOD code of record (utils/score_calculation.py,
                      `ODIN`): for each (T, eps), the perturbed logits f(x') and the scores
                      max softmax(f(x') / T), x' = x - eps * sign_ge(grad_x CE(f(x)/T, argmax)) / std
                      with sign_ge = +1 where the gradient is >= 0, else -1;
                    - Mahalanobis (`sample_estimator` + `get_Mahalanobis_score` on the penultimate
                      features): class means and tied covariance of the training features (the
                      EmpiricalCovariance estimate, in float64), the step on the mean half squared
                      distance to the closest class, and the scores max_c -d_c(x') (no 1/2, the
                      ood_core scale), distances in float64.
  ts_pair.pt        TorchScript (torch.jit.script) classifier whose forward returns (logits, features)
  ts_method.pt      the same network, forward returns logits and an exported `features(x)` method
  ts_logits.npy, ts_features.npy  their logits and features on odin_test_x.npy normalized as above

Penultimate features are the global mean of the final activation map (the code of record's
avg_pool2d(out, 8) on 32x32 inputs; on these 16x16 inputs the map is 4x4).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import WideResNet  # noqa: E402  (same architecture as the other goldens)

MEAN = np.array([125.3, 123.0, 113.9], dtype=np.float32) / 255
STD = np.array([63.0, 62.1, 66.7], dtype=np.float32) / 255
TEMPERATURES = [1.0, 10.0, 1000.0]
ODIN_EPS = [0.0, 0.0014, 0.0048]
MAHA_EPS = [0.0, 0.0005, 0.002, 0.01]
SHRINKAGE = 0.01


def normalize(u8):
    x = (u8.astype(np.float32) / 255 - MEAN) / STD  # N x H x W x C
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def features(net, x):
    out = net.block3(net.block2(net.block1(net.conv1(x))))
    out = net.relu(net.bn1(out))
    return out.mean(dim=(2, 3))


def signed_step(grad):
    g = (torch.ge(grad, 0).float() - 0.5) * 2
    for c in range(3):
        g[:, c] = g[:, c] / float(STD[c])
    return g


def logits_of(net, x):
    return net.fc(features(net, x))


def odin(net, x, T, eps):
    x = x.clone().requires_grad_(True)
    out = logits_of(net, x)
    pred = out.detach().argmax(1)
    F.cross_entropy(out / T, pred).backward()
    xp = torch.add(x.detach(), signed_step(x.grad), alpha=-eps)
    with torch.no_grad():
        logits = logits_of(net, xp)
    return logits, F.softmax(logits / T, dim=1).max(1)[0]


def distances(f, means, precision):
    diff = f.double().unsqueeze(1) - means.unsqueeze(0)
    return ((diff @ precision) * diff).sum(-1)


def mahalanobis(net, x, means, precision, eps):
    x = x.clone().requires_grad_(True)
    d = distances(features(net, x), means, precision)
    closest = d.detach().argmin(1, keepdim=True)
    (0.5 * d.gather(1, closest)).mean().backward()
    xp = torch.add(x.detach(), signed_step(x.grad), alpha=-eps)
    with torch.no_grad():
        d2 = distances(features(net, xp), means, precision)
    return -d2.min(1)[0]


class TinyNet(torch.nn.Module):
    """A small CNN standing in for "any pre-trained network" (not a WideResNet)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, 2, 1)
        self.fc = torch.nn.Linear(6, 10)

    def features(self, x):
        return F.relu(self.conv(x)).mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


class PairNet(TinyNet):
    def forward(self, x):
        f = self.features(x)
        return self.fc(f), f


class MethodNet(TinyNet):
    @torch.jit.export
    def features(self, x):
        return F.relu(self.conv(x)).mean(dim=(2, 3))


def main():
    torch.set_num_threads(1)
    net = WideResNet(depth=10, num_classes=10, widen=1, drop=0.3)
    net.load_state_dict(torch.load(os.path.join(HERE, "wrn10_zip.pt")))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)

    rng = np.random.default_rng(4)
    train_u8 = rng.integers(0, 256, size=(120, 16, 16, 3), dtype=np.uint8)
    train_y = np.repeat(np.arange(10, dtype=np.int64), 12)
    rng.shuffle(train_y)
    test_u8 = rng.integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
    np.save(os.path.join(HERE, "odin_train_x.npy"), train_u8)
    np.save(os.path.join(HERE, "odin_train_y.npy"), train_y)
    np.save(os.path.join(HERE, "odin_test_x.npy"), test_u8)
    x = normalize(test_u8)

    odin_cases = []
    for T in TEMPERATURES:
        for eps in ODIN_EPS:
            logits, score = odin(net, x, T, eps)
            odin_cases.append({"temperature": T, "epsilon": eps, "logits": logits.tolist(),
                               "scores": score.double().tolist()})

    with torch.no_grad():
        ftrain = features(net, normalize(train_u8)).double().numpy()
    classes = np.arange(10)
    means = np.stack([ftrain[train_y == c].mean(0) for c in classes])
    centered = ftrain - means[train_y]
    cov = centered.T @ centered / len(ftrain)
    # Some ReLU features of the random net are always 0 (a singular covariance): shrink towards
    # a scaled identity as ood_core's MahalanobisParams { shrinkage } does.
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    precision = torch.from_numpy(np.linalg.inv(cov))
    means_t = torch.from_numpy(means)
    maha_cases = [{"epsilon": eps, "scores": mahalanobis(net, x, means_t, precision, eps).tolist()}
                  for eps in MAHA_EPS]

    torch.manual_seed(5)
    pair = PairNet().eval()
    method = MethodNet().eval()
    method.load_state_dict(pair.state_dict())
    torch.jit.script(pair).save(os.path.join(HERE, "ts_pair.pt"))
    torch.jit.script(method).save(os.path.join(HERE, "ts_method.pt"))
    with torch.no_grad():
        logits, feats = pair(x)
    np.save(os.path.join(HERE, "ts_logits.npy"), logits.numpy())
    np.save(os.path.join(HERE, "ts_features.npy"), feats.numpy())

    with open(os.path.join(HERE, "odin_golden.json"), "w") as f:
        json.dump({"mean": MEAN.tolist(), "std": STD.tolist(), "odin": odin_cases,
                   "shrinkage": SHRINKAGE, "mahalanobis": maha_cases, "feature_means": means.tolist()}, f, indent=1)
    print("torch", torch.__version__, "wrote ODIN/Mahalanobis golden files to", HERE)


if __name__ == "__main__":
    main()
