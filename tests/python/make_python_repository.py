#!/usr/bin/python3
"""Writes the repository the Python client tests load from, with real PyTorch.

usage: make_python_repository.py OUT_DIR

OUT_DIR/repo/resnet18/1/model.pt      torchvision resnet18 (1000 classes)
OUT_DIR/repo/resnet18_ddp.pt          nn.DataParallel(resnet18).state_dict(): module. names
OUT_DIR/repo/mobilenet_v2/{1,2}/...   two versions (other seeds)
OUT_DIR/repo/squeezenet/1/ckpt.pt     a training checkpoint: epoch, model_state_dict, ema
OUT_DIR/repo/tiny.pt                  a few tensors of every dtype weightd serves
OUT_DIR/expected.json                 the files' paths per model (the tests torch.load them)
"""
import json
import os
import shutil
import sys

import torch
import torchvision


def save(repo, rel, obj):
    path = os.path.join(repo, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(obj, path)
    return rel


def randomized(model, seed):
    """Parameters and BatchNorm statistics away from their initial values."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.uniform_(0.5, 1.5) if t.dim() == 1 else t.normal_(0, 0.05)
            else:
                t.fill_(seed)  # num_batches_tracked
    return model


def main():
    out = sys.argv[1]
    repo = os.path.join(out, "repo")
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(repo)
    files = {}
    files["resnet18"] = save(repo, "resnet18/1/model.pt",
                             randomized(torchvision.models.resnet18(), 1).state_dict())
    ddp = torch.nn.DataParallel(randomized(torchvision.models.resnet18(), 4))
    files["resnet18_ddp"] = save(repo, "resnet18_ddp.pt", ddp.state_dict())
    files["mobilenet_v2@1"] = save(repo, "mobilenet_v2/1/model.pt",
                                   randomized(torchvision.models.mobilenet_v2(), 2).state_dict())
    files["mobilenet_v2@2"] = save(repo, "mobilenet_v2/2/model.pt",
                                   randomized(torchvision.models.mobilenet_v2(), 3).state_dict())
    files["squeezenet"] = save(repo, "squeezenet/1/ckpt.pt", {
        "epoch": 3,
        "model_state_dict": randomized(torchvision.models.squeezenet1_1(), 5).state_dict(),
        "ema": randomized(torchvision.models.squeezenet1_1(), 6).state_dict(),
    })
    torch.manual_seed(7)
    tiny = {
        "f32": torch.randn(3, 4), "f64": torch.randn(5, dtype=torch.float64),
        "f16": torch.randn(2, 2).half(), "bf16": torch.randn(6).bfloat16(),
        "i64": torch.arange(7), "i32": torch.arange(3, dtype=torch.int32),
        "u8": torch.arange(9, dtype=torch.uint8).view(3, 3), "b": torch.tensor([True, False]),
        "c64": torch.randn(2, dtype=torch.complex64), "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3), "strided": torch.randn(4, 6)[:, ::2],
    }
    files["tiny"] = save(repo, "tiny.pt", tiny)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"files": files}, f, indent=1)


if __name__ == "__main__":
    main()
