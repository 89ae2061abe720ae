#!/usr/bin/env python3
"""Loads a Polyak safetensors export into the PyTorch twin of resnet-mini and evaluates it.

Checks that export is exactly PyTorch's state dict (names, OIHW layouts, BN buffers): a
transposed tensor of the right size would load silently and score at chance.

  python3 scripts/torch_check.py runs/r1/final.safetensors [--test-limit N] [--expect TOP1]
Needs torch (pip install 'torch==2.13.0+cpu') and numpy; reads ../shared/bench/torch_reference.py.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "shared", "bench"))
import torch_reference as ref  # noqa: E402


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[info["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(body[b:e], dtype=dtype).reshape(info["shape"]).copy())
    return out, meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--expect", type=float, default=None, help="top-1 Polyak reported; fail if off by > 0.002")
    args = ap.parse_args()
    sd, meta = load_safetensors(args.weights)
    width = sd["conv1.weight"].shape[0]
    depth = len({k.split(".")[1] for k in sd if k.startswith("layer1.")})
    model = ref.ResNetMini(width, depth)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x, y = ref.load("t10k")
    if args.test_limit:
        x, y = x[:args.test_limit], y[:args.test_limit]
    x = ((x - ref.MEAN) / ref.STD).unsqueeze(1)
    top1 = ref.top1(model, x, y)
    print(json.dumps({"weights": args.weights, "width": width, "depth": depth, "torch_top1": top1,
                      "images": len(y)}))
    if args.expect is not None and abs(top1 - args.expect) > 0.002:
        sys.exit(f"top-1 {top1} differs from Polyak's {args.expect}")


if __name__ == "__main__":
    main()
