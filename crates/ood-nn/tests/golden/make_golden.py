"""Golden files for crates/ood-nn/tests/pytorch_golden.rs (run from the repo root):

    EOOD_TORCH=full bash scripts/setup-python.sh     # importable PyTorch (about 4.7 GB)
    .venv/bin/python crates/ood-nn/tests/golden/make_golden.py

Writes, next to this script:
  wrn10_zip.pt      state_dict of a small random WideResNet-10-1 (torch.save, zip format)
  wrn10_legacy.pt   the same state_dict, legacy format (_use_new_zipfile_serialization=False)
  wrn10_wrapped.pt  {'epoch': 3, 'state_dict': <fc.* and bn1.* of the same net, keys prefixed
                    with 'module.' as nn.DataParallel saves them>} (zip format)
  wrn10_x.npy       input batch (N x 3 x 32 x 32, float32)
  wrn10_logits.npy  eval-mode logits (N x 10)
  wrn10_features.npy  penultimate features after global average pooling (N x 16)
  tiny_script.pt    a tiny CNN classifier traced with torch.jit.trace (TorchScript), for
                    `eood extract --torchscript`; tiny_logits.npy: its logits on wrn10_x.npy
  losses.json       energy-bounded and OE fine-tuning losses on fixed logits
  train_steps.json  three SGD steps (Nesterov 0.9, weight decay 5e-4, the code of record's per-step
                    cosine schedule) from wrn10_zip.pt with dropout off, for the plain
                    cross-entropy, energy-bounded and OE objectives: per-step losses and the
                    eval-mode logits after the last step

The network is PyTorch's own definition of the energy-OOD code of record's architecture
(CIFAR/models/wrn.py, written out below from its description): pre-activation blocks,
convShortcut on width changes, final bn1 + relu, avg_pool2d(8), fc. BatchNorm running statistics,
weights and biases are randomized so that eval mode exercises every parameter.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, drop):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.drop = drop
        self.equal = c_in == c_out
        self.convShortcut = None if self.equal else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x):
        act = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.drop > 0:
            out = F.dropout(out, p=self.drop, training=self.training)
        out = self.conv2(out)
        return (x if self.equal else self.convShortcut(act)) + out


class NetworkBlock(nn.Module):
    def __init__(self, n, c_in, c_out, stride, drop):
        super().__init__()
        self.layer = nn.Sequential(
            *[BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, drop) for i in range(n)]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, num_classes, widen=1, drop=0.0, in_channels=3):
        super().__init__()
        w = [16, 16 * widen, 32 * widen, 64 * widen]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, w[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, w[0], w[1], 1, drop)
        self.block2 = NetworkBlock(n, w[1], w[2], 2, drop)
        self.block3 = NetworkBlock(n, w[2], w[3], 2, drop)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(w[3], num_classes)
        self.n_channels = w[3]

    def features(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return F.avg_pool2d(out, 8).view(-1, self.n_channels)

    def forward(self, x):
        return self.fc(self.features(x))


def energy_loss(logits, target, n_in, m_in, m_out, lam=0.1):
    """The code of record's energy-bounded fine-tuning loss (CIFAR/train.py, --score energy)."""
    loss = F.cross_entropy(logits[:n_in], target)
    e_in = -torch.logsumexp(logits[:n_in], dim=1)
    e_out = -torch.logsumexp(logits[n_in:], dim=1)
    return loss + lam * (F.relu(e_in - m_in).pow(2).mean() + F.relu(m_out - e_out).pow(2).mean())


def oe_loss(logits, target, n_in, lam=0.5):
    """Outlier Exposure (Hendrycks et al. 2019) as in the code of record (--score OE)."""
    loss = F.cross_entropy(logits[:n_in], target)
    out = logits[n_in:]
    return loss + lam * -(out.mean(1) - torch.logsumexp(out, dim=1)).mean()


def cosine_annealing(step, total_steps, lr_max, lr_min):
    """The code of record's schedule factor (CIFAR/train.py), used through LambdaLR."""
    return lr_min + (lr_max - lr_min) * 0.5 * (1 + np.cos(step / total_steps * np.pi))


def train_steps(sd, x, objective, lr, steps=3, total=10):
    """A few optimizer steps exactly as the code of record's loop: forward, scheduler.step(),
    zero_grad, loss, backward, optimizer.step()."""
    net = WideResNet(depth=10, num_classes=10, widen=1, drop=0.0)
    net.load_state_dict(sd)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda=lambda step: cosine_annealing(step, total, 1, 1e-6 / lr)
    )
    target = torch.tensor([1, 4, 9, 0])
    losses = []
    for _ in range(steps):
        out = net(x)
        sched.step()
        opt.zero_grad()
        if objective == "ce":
            loss = F.cross_entropy(out, target)
        elif objective == "energy":
            loss = energy_loss(out, target[:2], 2, -8.0, -3.0)
        else:
            loss = oe_loss(out, target[:2], 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        logits = net(x)
    return {"objective": objective, "lr": lr, "total_steps": total, "losses": losses,
            "logits_after": logits.tolist(), "fc_bias_after": net.fc.bias.tolist()}


def main():
    torch.manual_seed(20201)
    net = WideResNet(depth=10, num_classes=10, widen=1, drop=0.3)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) * 1.5 + 0.25)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn_like(t) * 0.2)
            elif name.endswith("num_batches_tracked"):
                t.fill_(123)
            elif name.startswith("bn1.") or ".bn" in name:
                t.copy_(1.0 + 0.2 * torch.randn_like(t) if name.endswith("weight") else 0.1 * torch.randn_like(t))
            elif name == "fc.bias":
                t.copy_(0.1 * torch.randn_like(t))
    net.eval()
    sd = net.state_dict()
    torch.save(sd, os.path.join(HERE, "wrn10_zip.pt"))
    torch.save(sd, os.path.join(HERE, "wrn10_legacy.pt"), _use_new_zipfile_serialization=False)
    head = {k: v for k, v in sd.items() if k.startswith(("fc.", "bn1."))}
    wrapped = {"epoch": 3, "state_dict": {"module." + k: v for k, v in head.items()}}
    torch.save(wrapped, os.path.join(HERE, "wrn10_wrapped.pt"))

    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        feats = net.features(x)
        logits = net.fc(feats)
    for name, arr in [("x", x), ("logits", logits), ("features", feats)]:
        np.save(os.path.join(HERE, f"wrn10_{name}.npy"), arr.numpy().astype(np.float32))
    tiny = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    ).eval()
    traced = torch.jit.trace(tiny, x)
    traced.save(os.path.join(HERE, "tiny_script.pt"))
    with torch.no_grad():
        np.save(os.path.join(HERE, "tiny_logits.npy"), tiny(x).numpy().astype(np.float32))

    # Fine-tuning losses on fixed logits: 3 in-distribution rows then 4 outlier rows.
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(7, 10, generator=g, dtype=torch.float64) * 6.0
    logits[3:] *= 0.3  # outliers: flatter logits, energies above the out margin for some rows
    target = torch.tensor([1, 4, 9])
    cases = {
        "logits": logits.tolist(),
        "target": target.tolist(),
        "n_in": 3,
        "energy": [
            {"m_in": m_in, "m_out": m_out, "loss": energy_loss(logits, target, 3, m_in, m_out).item()}
            for m_in, m_out in [(-23.0, -5.0), (-27.0, -5.0), (-8.0, -3.0), (-2.0, -1.0)]
        ],
        "oe": oe_loss(logits, target, 3).item(),
        "cross_entropy": F.cross_entropy(logits[:3], target).item(),
    }
    with open(os.path.join(HERE, "losses.json"), "w") as f:
        json.dump(cases, f, indent=1)

    steps = [train_steps(sd, x, "ce", 0.1), train_steps(sd, x, "energy", 0.001), train_steps(sd, x, "oe", 0.001)]
    with open(os.path.join(HERE, "train_steps.json"), "w") as f:
        json.dump({"target": [1, 4, 9, 0], "n_in": 2, "m_in": -8.0, "m_out": -3.0, "cases": steps}, f, indent=1)
    print("torch", torch.__version__, "wrote golden files to", HERE)


if __name__ == "__main__":
    main()
