#!/usr/bin/env python3
"""The load test's peer: the same model and decision rule as `eood serve`, served the way a
PyTorch user would do it (FastAPI + uvicorn + PyTorch, one request = one forward pass).

Model: the WideResNet of scripts/export-onnx.py (imported from it, one owner of the Python
layout) with the checkpoint's safetensors weights; input: one PNG/JPEG body decoded by PIL,
gray, torchvision-style Resize(28) + CenterCrop(28) when another size, `(x / 255 - mean) / std`;
score: energy `logsumexp(logits)`; accept iff score > tau (the detector file). Answers the same
JSON as `POST /v1/detect`. Needs torch, safetensors, pillow, fastapi, uvicorn: never the repo's
.venv (scripts/load-test.sh makes /work/venv-serve from /work/venv-ref plus fastapi/uvicorn).

    python scripts/peer_fastapi.py --checkpoint models/fmnist-wrn-10-1.json \
        --detector models/fmnist-detector.json --port 18081 [--threads N]
"""
import argparse
import importlib.util
import io
import json
import os

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]


def load_wrn():
    spec = importlib.util.spec_from_file_location("export_onnx", os.path.join(HERE, "export-onnx.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.WideResNet


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--detector", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18081)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with open(args.checkpoint) as f:
        side = json.load(f)
    with open(args.detector) as f:
        det = json.load(f)
    arch, inp = side["architecture"], side["input"]
    net = load_wrn()(arch["depth"], arch["widen_factor"], arch["num_classes"], arch["in_channels"])
    net.load_state_dict(load_file(os.path.join(os.path.dirname(args.checkpoint), side["weights"])))
    net.eval()
    h, w = inp["height"], inp["width"]
    mean, std = inp["mean"][0], inp["std"][0]
    tau, temperature = det["tau"], det.get("temperature") or 1.0

    app = FastAPI()

    def tensor(body: bytes) -> torch.Tensor:
        img = Image.open(io.BytesIO(body)).convert("L")
        if img.size != (w, h):
            s = max(h, w) / min(img.size)
            img = img.resize((round(img.size[0] * s), round(img.size[1] * s)), Image.BILINEAR)
            left, top = (img.size[0] - w) // 2, (img.size[1] - h) // 2
            img = img.crop((left, top, left + w, top + h))
        x = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
        return torch.from_numpy(x).reshape(1, 1, h, w)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    def infer(x):
        with torch.inference_mode():
            return net(x)[0]

    @app.post("/v1/detect")
    async def detect(request: Request):
        body = await request.body()
        try:
            x = tensor(body)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the client's
            raise HTTPException(status_code=400, detail=f"cannot decode image: {e}")
        # the forward pass off the event loop (torch releases the GIL): the usual FastAPI pattern
        logits = await run_in_threadpool(infer, x)
        score = float(temperature * torch.logsumexp(logits[0] / temperature, dim=0))
        p = torch.softmax(logits[0], dim=0)
        k = int(torch.argmax(logits[0]))
        return {
            "results": [{"accepted": score > tau, "score": score, "class": k, "label": LABELS[k],
                         "confidence": float(p[k])}],
            "method": det["method"], "tau": tau, "version": "peer-fastapi",
        }

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
