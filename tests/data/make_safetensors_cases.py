#!/usr/bin/python3
"""Safetensors files for tests/core/format/safetensors, and a checker.

Usage:
  make_safetensors_cases.py write OUTDIR
      OUTDIR/all_dtypes.safetensors  every dtype, a 0-dim and empty tensors,
                                     __metadata__
      OUTDIR/all_dtypes.json         what Python sees: names in order, dtype,
                                     shape, nbytes, xxh64 of the bytes, metadata
      OUTDIR/sharded/model.safetensors.index.json + 2 shards, as transformers'
                                     save_pretrained lays them out
  make_safetensors_cases.py check FILE
      Reads FILE (written by our C++ writer from all_dtypes.safetensors plus
      "float32_t", a transposed view of "float32") with the spec reader in
      safetensors_io.py and compares each tensor with torch.equal.
"""

import json
import os
import sys

import torch
import xxhash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

METADATA = {"format": "pt", "epoch": "3"}


def generate():
    """The tensors of all_dtypes.safetensors, in file order."""
    g = torch.Generator().manual_seed(1234)
    t = {}
    t["bool"] = torch.rand(2, 3, generator=g) > 0.5
    t["uint8"] = torch.randint(0, 256, (5,), generator=g, dtype=torch.uint8)
    t["int8"] = torch.randint(-128, 128, (2, 2), generator=g, dtype=torch.int8)
    t["int16"] = torch.randint(-30000, 30000, (3,), generator=g, dtype=torch.int16)
    t["int32"] = torch.randint(-2**31, 2**31 - 1, (2, 3), generator=g, dtype=torch.int32)
    t["int64"] = torch.randint(-2**62, 2**62, (4,), generator=g, dtype=torch.int64)
    t["float16"] = torch.randn(3, 2, generator=g).half()
    t["bfloat16"] = torch.randn(7, generator=g).bfloat16()
    t["float32"] = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t["float64"] = torch.randn(2, 2, 2, generator=g, dtype=torch.float64)
    t["complex64"] = torch.randn(3, generator=g, dtype=torch.complex64)
    t["complex128"] = torch.randn(2, generator=g, dtype=torch.complex128)
    t["scalar"] = torch.tensor(2.5)
    t["empty"] = torch.zeros(0)
    t["empty_2d"] = torch.zeros(2, 0, 3, dtype=torch.int64)
    return t


def describe(tensors, metadata):
    return {
        "tensors": [{
            "name": name,
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "nbytes": t.numel() * t.element_size(),
            "xxh64": str(xxhash.xxh64(safetensors_io.tensor_bytes(t)).intdigest()),
        } for name, t in tensors.items()],
        "metadata": metadata,
    }


def write_sharded(outdir):
    os.makedirs(outdir, exist_ok=True)
    g = torch.Generator().manual_seed(99)
    shards = {
        "model-00001-of-00002.safetensors": {
            "embed.weight": torch.randn(4, 3, generator=g),
            "layer.0.weight": torch.randn(3, 3, generator=g),
        },
        "model-00002-of-00002.safetensors": {
            "layer.0.bias": torch.randn(3, generator=g),
            "head.weight": torch.randn(2, 3, generator=g).half(),
        },
    }
    weight_map = {}
    total = 0
    for shard, tensors in shards.items():
        safetensors_io.write(os.path.join(outdir, shard), tensors, {"format": "pt"})
        for name, t in tensors.items():
            weight_map[name] = shard
            total += t.numel() * t.element_size()
    # transformers sorts the weight_map by name.
    index = {"metadata": {"total_size": total},
             "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    everything = {name: t for tensors in shards.values() for name, t in tensors.items()}
    ordered = {name: everything[name] for name in index["weight_map"]}
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump(describe(ordered, {"total_size": str(total), "format": "pt"}), f, indent=2)


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    write_sharded(os.path.join(outdir, "sharded"))
    # all_dtypes.json last: the build uses it as the stamp of a complete run.
    tensors = generate()
    safetensors_io.write(os.path.join(outdir, "all_dtypes.safetensors"), tensors, METADATA)
    with open(os.path.join(outdir, "all_dtypes.json"), "w") as f:
        json.dump(describe(tensors, METADATA), f, indent=2)


def check(path):
    expected = generate()
    expected["float32_t"] = expected["float32"].t()
    got, metadata = safetensors_io.read(path)
    problems = []
    if list(got) != list(expected):
        problems.append(f"names {list(got)} != {list(expected)}")
    for name, t in expected.items():
        if name in got and (got[name].dtype != t.dtype or not torch.equal(got[name], t)):
            problems.append(f"{name}: {got[name]!r} != {t!r}")
    if metadata != METADATA:
        problems.append(f"metadata {metadata} != {METADATA}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
