#!/usr/bin/python3
"""Writes the example model repository with real PyTorch.

Usage: /usr/bin/python3 examples/make_repository.py OUTDIR

  OUTDIR/lenet.pt                          LeNet of the 60-minute blitz, state_dict
  OUTDIR/lenet_safetensors.safetensors     the same weights as safetensors
  OUTDIR/resnet18/1/model.pt               torchvision resnet18 (weights=None)
  OUTDIR/classifier/1/checkpoint.pt        a training checkpoint: model_state_dict,
                                           optimizer_state_dict (Adam), epoch, loss
  OUTDIR/.complete                         written last (the Makefile's stamp)

Seeds are fixed, so every run writes the same weights.
"""

import json
import os
import struct
import sys

import torch
import torchvision

from lenet import LeNet, train_steps  # examples/lenet.py, beside this script


_SAFETENSORS_CODES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                      torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
                      torch.uint8: "U8", torch.bool: "BOOL"}


def save_safetensors(tensors, path, metadata=None):
    """safetensors as the spec lays it out (Debian has no `safetensors` package):
    u64 header size, JSON header padded to 8 bytes, then the tensors' bytes."""
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        data = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": _SAFETENSORS_CODES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: make_repository.py OUTDIR\n")
        return 2
    out = argv[1]
    stamp = os.path.join(out, ".complete")
    if os.path.exists(stamp):
        os.remove(stamp)
    os.makedirs(os.path.join(out, "resnet18", "1"), exist_ok=True)
    os.makedirs(os.path.join(out, "classifier", "1"), exist_ok=True)

    torch.manual_seed(0)
    lenet = LeNet()
    torch.save(lenet.state_dict(), os.path.join(out, "lenet.pt"))
    save_safetensors(lenet.state_dict(), os.path.join(out, "lenet_safetensors.safetensors"),
                     {"format": "pt"})

    torch.manual_seed(1)
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), os.path.join(out, "resnet18", "1", "model.pt"))

    torch.manual_seed(2)
    classifier = LeNet()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    loss = train_steps(classifier, optimizer, steps=5, batch_size=8).item()
    torch.save({
        "epoch": 1,
        "model_state_dict": classifier.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": loss,
    }, os.path.join(out, "classifier", "1", "checkpoint.pt"))

    with open(stamp, "w"):
        pass
    print("wrote the example repository to %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
