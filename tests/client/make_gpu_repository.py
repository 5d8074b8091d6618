#!/usr/bin/python3
"""Writes the repository of the client's CUDA tests: one checkpoint holding a
tensor of every dtype this torch has, and what copy_ makes of it in the dtypes
of a casting target, with real PyTorch.

usage: make_gpu_repository.py OUT_DIR

OUT_DIR/repo/dtypes.pt  the checkpoint
OUT_DIR/expected.json   "dtypes": name -> {dtype, shape, xxh64} as stored;
                        "cast": name -> {dtype, xxh64} after copy_ into the
                        casting target's dtype (client_gpu_test.cc's table).
"""
import json
import os
import shutil
import sys

import torch
import xxhash


def tensor_bytes(t):
    # Every dtype viewed as bytes: numpy has no bfloat16 or float8.
    return t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()


def xxh(t):
    return xxhash.xxh64(tensor_bytes(t)).hexdigest()


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


# What the casting target holds where it differs from the checkpoint: mixed
# dtypes, so that the server sends tensors as stored and the client converts.
CAST = {"f32": torch.bfloat16, "f16": torch.float32, "bf16": torch.float32, "f64": torch.float32,
        "i64": torch.int32, "u8": torch.float32, "big": torch.float16}


def main():
    out = sys.argv[1]
    repo = os.path.join(out, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(repo)
    torch.manual_seed(3)
    sd = {
        "f32": torch.randn(64, 33),
        "f16": torch.randn(1000).half(),
        "bf16": (torch.randn(37, 5) * 1e3).bfloat16(),
        # Subnormals and extremes: a device that flushed them would show.
        "f64": torch.tensor([1e-310, -1e-320, 1e300, -0.0, 3.141592653589793] * 3, dtype=torch.float64),
        "i64": torch.randint(-2**40, 2**40, (10,)),
        "i32": torch.randint(-2**31, 2**31 - 1, (11,), dtype=torch.int32),
        "i16": torch.randint(-2**15, 2**15 - 1, (12,), dtype=torch.int16),
        "i8": torch.randint(-128, 127, (13,), dtype=torch.int8),
        "u8": torch.randint(0, 255, (3, 5, 7), dtype=torch.uint8),
        "bool": torch.rand(21) > 0.5,
        "c64": torch.randn(8, dtype=torch.complex64),
        "c128": torch.randn(3, dtype=torch.complex128),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        # Many chunks, an odd byte count: 3 Mi + 7 float32.
        "big": torch.randn(3 * 1024 * 1024 + 7),
        # The test's parameter is a transposed (non-contiguous) view.
        "nc": torch.randn(48, 40),
    }
    # The torch 2.x dtypes, where this torch has them.
    for name in ("float8_e4m3fn", "float8_e5m2"):
        if hasattr(torch, name):
            sd[name] = torch.randn(19).to(getattr(torch, name))
    for name in ("uint16", "uint32", "uint64"):
        if hasattr(torch, name):
            sd[name] = torch.arange(0, 17 * 3001, 3001, dtype=torch.int64).to(getattr(torch, name))
    torch.save(sd, os.path.join(repo, "dtypes.pt"))

    expected = {"dtypes": {}, "cast": {}}
    for name, t in sd.items():
        expected["dtypes"][name] = {"dtype": dtype_name(t.dtype), "shape": list(t.shape),
                                    "xxh64": xxh(t)}
    for name, dtype in CAST.items():
        into = torch.empty(sd[name].shape, dtype=dtype)
        into.copy_(sd[name])
        expected["cast"][name] = {"dtype": dtype_name(dtype), "xxh64": xxh(into)}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
