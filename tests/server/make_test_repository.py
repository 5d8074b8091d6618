#!/usr/bin/python3
"""Writes the model repository the server tests serve, with real PyTorch.

usage: make_test_repository.py OUT_DIR

OUT_DIR/repo/...        the repository
OUT_DIR/expected.json   per model: the selected state dict as Python sees it
                        (name, dtype, shape, nbytes, xxh64 of the row-major
                        bytes) and xxh64 of each floating tensor cast to
                        float16/bfloat16/float64/float32 by Tensor.to.
"""
import json
import os
import shutil
import sys

import torch
import xxhash

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
import safetensors_io  # noqa: E402  (tests/data helper; Debian has no safetensors)


class LeNet(torch.nn.Module):
    """The LeNet of the PyTorch tutorial (Neural Networks)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 6, 5)
        self.conv2 = torch.nn.Conv2d(6, 16, 5)
        self.fc1 = torch.nn.Linear(16 * 5 * 5, 120)
        self.fc2 = torch.nn.Linear(120, 84)
        self.fc3 = torch.nn.Linear(84, 10)
        self.bn = torch.nn.BatchNorm1d(10)


tensor_bytes = safetensors_io.tensor_bytes


def describe(state_dict):
    out = []
    for name, t in state_dict.items():
        entry = {
            "name": name,
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "nbytes": t.numel() * t.element_size(),
            "checksum": xxhash.xxh64(tensor_bytes(t)).hexdigest(),
        }
        if t.is_floating_point():
            entry["cast"] = {
                d: xxhash.xxh64(tensor_bytes(t.to(getattr(torch, d)))).hexdigest()
                for d in ("float16", "bfloat16", "float64", "float32")
            }
        out.append(entry)
    return out


def main():
    out = sys.argv[1]
    repo = os.path.join(out, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    torch.manual_seed(0)
    expected = {}

    def put(rel, obj, state_dict, use_safetensors=False):
        path = os.path.join(repo, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if use_safetensors:
            safetensors_io.write(path, state_dict, {"source": "make_test_repository"})
        else:
            torch.save(obj, path)
        return describe(state_dict)

    lenet = LeNet().state_dict()
    expected["lenet"] = put("lenet/1/model.pt", lenet, lenet)

    # A full training checkpoint: the state dict sits under model_state_dict.
    model = LeNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = {"epoch": 3, "model_state_dict": model.state_dict(),
               "optimizer_state_dict": opt.state_dict(), "loss": 0.25, "tag": "run-7"}
    expected["trainer"] = put("trainer/1/checkpoint.pth", trainer, trainer["model_state_dict"])

    # DataParallel names, mixed dtypes, and views (non-contiguous, offsets).
    base = torch.randn(6, 8)
    ddp = {
        "module.weight": base.t(),                    # non-contiguous
        "module.row": base[2],                        # storage offset
        "module.half": torch.randn(5, 3).half(),
        "module.bf16": torch.randn(7).bfloat16(),
        "module.double": torch.randn(2, 2, dtype=torch.float64),
        "module.steps": torch.arange(10, dtype=torch.int64),
        "module.mask": torch.tensor([True, False, True]),
        "module.scalar": torch.tensor(1.5),
    }
    expected["ddp"] = put("ddp.pt", ddp, ddp)

    # safetensors, bare file.
    embed = {"embed.weight": torch.randn(16, 4), "embed.bias": torch.zeros(4)}
    expected["embed"] = put("embed.safetensors", embed, embed, use_safetensors=True)

    # Big enough for many chunks: 2 x 2 MiB.
    big = {"a": torch.randn(512, 1024), "b": torch.randn(1024, 512)}
    expected["big"] = put("big/1/model.pt", big, big)

    # A configured model: model.pbtxt picks the state dict.
    os.makedirs(os.path.join(repo, "configured"), exist_ok=True)
    with open(os.path.join(repo, "configured", "model.pbtxt"), "w") as f:
        f.write('select: "model_state_dict"\n'
                'rules { rules { strip_prefix: "module." } }\n')
    wrapped = {"module." + k: v for k, v in LeNet().state_dict().items()}
    configured = {"epoch": 1, "model_state_dict": wrapped}
    expected["configured"] = put("configured/1/model.pt", configured, wrapped)

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
