#!/usr/bin/env python3
"""Export an eood checkpoint (sidecar .json + .safetensors) to ONNX for the tract runner.

Rebuilds the WideResNet of crates/ood-nn/src/wrn.rs (the code of record's CIFAR/models/wrn.py
layout: pre-activation blocks, `convShortcut` when the width changes, final bn1 + ReLU, global
mean pooling, fc) in PyTorch, loads the weights by their state-dict names and exports a graph
with input `input` (N x C x H x W float32, N dynamic) and two outputs: `logits` (N x K) and
`features` (N x D, the pooled input of fc). Opset 13: tract's ONNX importer covers every op
used here at that opset, and the legacy TorchScript exporter writes it without onnxscript.

It also writes a golden file (JSON) with the logits and features PyTorch computes for a few
fixed inputs, used by crates/ood-bundle/tests. Run with a Python that imports torch
(e.g. python/.venv-test plus `pip install onnx safetensors`), not the repo's minimal .venv:

    python scripts/export-onnx.py models/fmnist-wrn-10-1.json models/fmnist-wrn-10-1.onnx \
        --golden crates/ood-bundle/tests/fixtures/fmnist-wrn-10-1.golden.json
"""
import argparse
import hashlib
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.equal = c_in == c_out
        if not self.equal:
            self.convShortcut = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x):
        act = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(act)))
        out = self.conv2(out)  # dropout is the identity in eval mode
        return out + (x if self.equal else self.convShortcut(act))


class NetworkBlock(nn.Module):
    def __init__(self, n, c_in, c_out, stride):
        super().__init__()
        self.layer = nn.Sequential(
            *[BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen_factor, num_classes, in_channels):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        w = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, w[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, w[0], w[1], 1)
        self.block2 = NetworkBlock(n, w[1], w[2], 2)
        self.block3 = NetworkBlock(n, w[2], w[3], 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        features = out.mean(dim=(2, 3))  # global mean, as wrn.rs (works for 28x28 and 32x32)
        return self.fc(features), features


def golden_inputs(c, h, w):
    """Fixed, seed-free inputs: zeros, a ramp, a checkerboard and a sine pattern (normalised scale)."""
    n = c * h * w
    idx = torch.arange(n, dtype=torch.float64).reshape(c, h, w)
    ramp = idx / n * 4.0 - 2.0
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    checker = (((yy + xx) % 2).double() * 2.0 - 1.0).expand(c, h, w)
    sine = torch.sin(idx * 0.37) * 1.5
    return torch.stack([torch.zeros(c, h, w, dtype=torch.float64), ramp, checker, sine]).float()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="eood checkpoint sidecar (.json)")
    ap.add_argument("out", help="ONNX file to write")
    ap.add_argument("--golden", help="write PyTorch's logits/features of fixed inputs here (JSON)")
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args()

    with open(args.checkpoint) as f:
        side = json.load(f)
    if side.get("format") != "eood-checkpoint":
        sys.exit(f"{args.checkpoint}: not an eood checkpoint sidecar")
    arch, inp = side["architecture"], side["input"]
    weights = os.path.join(os.path.dirname(args.checkpoint), side["weights"])
    if sha256(weights) != side["weights_sha256"]:
        sys.exit(f"{weights}: SHA-256 differs from the sidecar's")
    net = WideResNet(arch["depth"], arch["widen_factor"], arch["num_classes"], arch["in_channels"])
    net.load_state_dict(load_file(weights), strict=True)
    net.eval()

    c, h, w = inp["channels"], inp["height"], inp["width"]
    dummy = torch.zeros(2, c, h, w)
    torch.onnx.export(
        net, dummy, args.out, input_names=["input"], output_names=["logits", "features"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}, "features": {0: "N"}},
        opset_version=args.opset, do_constant_folding=True, dynamo=False,
    )
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, sha256 {sha256(args.out)})")

    if args.golden:
        x = golden_inputs(c, h, w)
        with torch.no_grad():
            logits, features = net(x)
        doc = {
            "source": "scripts/export-onnx.py",
            "checkpoint": os.path.basename(args.checkpoint),
            "onnx_sha256": sha256(args.out),
            "torch": torch.__version__,
            "inputs": "golden_inputs(c, h, w): zeros, ramp, checkerboard, sine (see the script)",
            "shape": [int(s) for s in x.shape],
            "input_values": x.flatten().tolist(),
            "logits": logits.tolist(),
            "features": features.tolist(),
        }
        with open(args.golden, "w") as f:
            json.dump(doc, f)
        print(f"wrote {args.golden}")


if __name__ == "__main__":
    main()
