#!/usr/bin/python3
"""Writes the repository the client tests load from, and what PyTorch's
load_state_dict makes of it, with real PyTorch.

usage: make_client_repository.py OUT_DIR

OUT_DIR/repo/...       the repository
OUT_DIR/expected.json  per case: xxh64 of every entry of module.state_dict()
                       after Python loaded the checkpoint (row-major bytes),
                       plus the checkpoint's own key order.
"""
import json
import math
import os
import shutil
import sys

import torch
import xxhash

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "server"))
sys.path.insert(0, os.path.join(here, "..", "data"))
sys.path.insert(0, os.path.join(here, "..", "..", "examples"))
from lenet import LeNet as TutorialLeNet  # noqa: E402
from make_test_repository import LeNet, tensor_bytes  # noqa: E402


def checksums(module):
    return {k: xxhash.xxh64(tensor_bytes(v)).hexdigest() for k, v in module.state_dict().items()}


def main():
    out = sys.argv[1]
    repo = os.path.join(out, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(repo)
    torch.manual_seed(1)
    expected = {}

    def save(name, obj):
        torch.save(obj, os.path.join(repo, name + ".pt"))

    source = LeNet()
    # Non-default buffers, so a buffer that was not loaded shows.
    source.bn.running_mean.uniform_(-1, 1)
    source.bn.running_var.uniform_(0.5, 2)
    source.bn.num_batches_tracked.fill_(7)
    sd = source.state_dict()
    save("lenet", sd)
    expected["lenet_order"] = list(sd.keys())

    loaded = LeNet()
    loaded.load_state_dict(sd)
    expected["lenet"] = checksums(loaded)

    # Whole-model files (torch.save(model)), zip and legacy, and a whole
    # DataParallel: the server serves their state_dict().
    save("lenet_whole", source)
    torch.save(source, os.path.join(repo, "lenet_whole_legacy.pt"),
               _use_new_zipfile_serialization=False)
    save("lenet_whole_dp", torch.nn.DataParallel(source))

    # DataParallel / DDP names.
    save("lenet_ddp", {"module." + k: v for k, v in sd.items()})

    # float16 checkpoint into the float32 module (copy_ converts).
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    save("lenet_half", half)
    m = LeNet()
    m.load_state_dict(half)
    expected["lenet_half_into_float32"] = checksums(m)

    # float32 checkpoint into a float64 module.
    m = LeNet().double()
    m.load_state_dict(sd)
    expected["lenet_into_float64"] = checksums(m)

    # bfloat16 on the wire: what Tensor.to(bfloat16) then copy_ gives.
    m = LeNet()
    m.load_state_dict({k: (v.bfloat16() if v.is_floating_point() else v) for k, v in sd.items()})
    expected["lenet_bf16_transfer"] = checksums(m)

    # Another head: fc3 has 100 outputs, bn 100 features.
    class Head100(LeNet):
        def __init__(self):
            super().__init__()
            self.fc3 = torch.nn.Linear(84, 100)
            self.bn = torch.nn.BatchNorm1d(100)

    save("lenet_head100", Head100().state_dict())

    # Casting "b" to int64 fails on the server (NaN) after "a" was sent.
    save("nan", {"a": torch.tensor([1.5, -2.5, 3.0, 4.0]),
                 "b": torch.tensor([1.0, math.nan, 2.0, 3.0])})

    # Bigger than the transport's buffers, so a server shut down after the
    # first tensor really cuts the stream: 4 x 8 MiB.
    big = {name: torch.randn(1024, 2048) for name in ("a", "b", "c", "d")}
    save("big", big)
    expected["big"] = {k: xxhash.xxh64(tensor_bytes(v)).hexdigest() for k, v in big.items()}

    # What examples/trainer loads: a training checkpoint of the tutorial's
    # LeNet (no BatchNorm), as examples/make_repository.py writes it.
    os.makedirs(os.path.join(repo, "classifier", "1"))
    # Metadata keys out of alphabetical order and integral floats, which a
    # google.protobuf.Struct would reorder and print as integers.
    torch.save({"epoch": 1, "model_state_dict": TutorialLeNet().state_dict(), "loss": 0.5,
                "zeta": 5.0, "best_epoch": 3, "optimizer": "sgd", "momentum": 0.0,
                "schedule": {"warmup": 2, "lr": 1.0, "decay": [0.5, 0.25]}, "alpha": -2.0},
               os.path.join(repo, "classifier", "1", "checkpoint.pt"))

    # Not servable: `weightctl list` says so instead of dropping it silently.
    with open(os.path.join(repo, "notes.txt"), "w") as f:
        f.write("not a checkpoint\n")

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
