"""The PyTorch side of scripts/bench-nn-vs-pytorch.sh (the Rust/tch side is
crates/ood-nn/examples/bench_vs_pytorch.rs; results in docs/bench-nn-speed.md).

    python scripts/bench-nn-vs-pytorch.py <infer|step> <timed iterations> <threads>

WRN-40-2 (dropout 0.3, 10 classes, 32x32x3; the definition of crates/ood-nn/tests/golden/make_golden.py,
the code of record's architecture) on random data already in memory:
- infer: batch 256, net.eval(), torch.no_grad();
- step: one energy fine-tuning step as the code of record's CIFAR/train.py: 128 in-distribution + 256
  outlier images concatenated, net.train(), cross-entropy + 0.1 * (relu(E_in + 23)^2 mean +
  relu(-5 - E_out)^2 mean), backward, SGD Nesterov (lr 0.001, momentum 0.9, weight decay 5e-4).
One untimed warm-up iteration, then one JSON line: images/s per timed iteration, images per CPU second
(user + system, time.process_time) over the timed iterations, and the peak resident set size (VmHWM).
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "crates", "ood-nn", "tests", "golden"))
from make_golden import WideResNet  # noqa: E402


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("infer", "step"):
        sys.exit("usage: bench-nn-vs-pytorch.py <infer|step> <iterations> <threads>")
    mode, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = WideResNet(depth=40, num_classes=10, widen=2, drop=0.3)
    opt = torch.optim.SGD(net.parameters(), 0.001, momentum=0.9, weight_decay=5e-4, nesterov=True)
    n_in, n_out = 128, 256
    n = 256 if mode == "infer" else n_in + n_out
    x = torch.randn(n, 3, 32, 32)
    y = torch.randint(10, (n_in,))
    ips = []
    cpu_start = 0.0
    for i in range(iters + 1):
        if i == 1:
            cpu_start = time.process_time()
        t = time.perf_counter()
        if mode == "infer":
            net.eval()
            with torch.no_grad():
                net(x).sum().item()
        else:
            net.train()
            out = net(x)
            opt.zero_grad()
            e_in = -torch.logsumexp(out[:n_in], dim=1)
            e_out = -torch.logsumexp(out[n_in:], dim=1)
            loss = F.cross_entropy(out[:n_in], y) + 0.1 * (
                F.relu(e_in + 23.0).pow(2).mean() + F.relu(-5.0 - e_out).pow(2).mean()
            )
            loss.backward()
            opt.step()
            loss.item()
        if i > 0:
            ips.append(n / (time.perf_counter() - t))
    cpu = time.process_time() - cpu_start
    print(json.dumps({"impl": "pytorch", "mode": mode, "batch": n, "threads": torch.get_num_threads(),
                      "images_per_second": ips, "images_per_cpu_second": n * iters / cpu, "peak_rss_mb": peak_rss_mb(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
