#!/usr/bin/python3
"""Writes whole-model files (torch.save(model)) and what PyTorch's
state_dict() makes of them, with real PyTorch and torchvision.

usage: make_whole_models.py OUT_DIR

OUT_DIR/<case>.<zip|legacy>.pt  torch.save(obj), the zip format and the
                                legacy one (_use_new_zipfile_serialization=False)
OUT_DIR/expected.json           {"torch": version, "cases": [...]}, per case:
  file, format, select (the --select argument, "" = automatic), selected
  (the path chosen), tensors: [name, dtype, shape, xxh64 of the row-major
  bytes] of torch.load(file, weights_only=False) -> select -> .state_dict(),
  in its order, and modules: [path, class] of named_modules() below the
  selection (paths from the root).

The files are trusted (this script made them), so loading them back with
weights_only=False to get the expected values is fine. Whatever torch runs
this script writes the files: Debian 12's 1.13, or 2.6 in the trixie lane.
"""
import json
import os
import sys
import warnings

import torch
import torch.nn as nn
import torchvision
import xxhash

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "data"))
from safetensors_io import tensor_bytes  # noqa: E402

warnings.filterwarnings("ignore")  # weight_norm's deprecation in torch 2.x


# --- __main__ modules, like the tutorial's TheModelClass ---------------------

class TheModelClass(nn.Module):
    """The "Saving and loading models" tutorial's model, plus a BatchNorm
    (num_batches_tracked) and a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.bn1 = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        self.register_buffer("scale", torch.tensor([0.5, 2.0]))
        self.register_buffer("cache", torch.ones(3), persistent=False)


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.proj = nn.Linear(n, n)
        self.norm = nn.LayerNorm(n)
        self.act = nn.GELU()
        self.register_buffer("steps", torch.tensor(4))


class Containers(nn.Module):
    """Sequential, ModuleList, ModuleDict, nested custom modules, RNNs
    (whose _flat_weights lists hold the parameters again), None entries."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(),
                                  nn.Sequential(Block(4), nn.Dropout(0.1)))
        self.blocks = nn.ModuleList([Block(4), Block(4)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 2)})
        self.lstm = nn.LSTM(4, 5, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(3, 2, batch_first=True)
        self.emb = nn.Embedding(7, 4, padding_idx=0)
        self.bias_free = nn.Linear(4, 4)
        self.bias_free.bias = None  # a parameter set to None
        self.register_buffer("unset", None)
        self.register_module("absent", None)
        self.scale = nn.Parameter(torch.tensor(1.5))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.blocks = nn.Sequential(Block(8), Block(8))


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.head = nn.Linear(8, 4)
        # torch.nn.utils.weight_norm: a hook (WeightNorm object) in
        # _forward_pre_hooks, parameters weight_g / weight_v.
        self.refine = torch.nn.utils.weight_norm(nn.Linear(4, 4))


# --- what PyTorch says -------------------------------------------------------

def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def class_name(obj):
    return "%s.%s" % (type(obj).__module__, type(obj).__qualname__)


def randomize(module):
    """Non-default values everywhere, so a tensor read from the wrong place
    shows; BatchNorm statistics and counters too."""
    torch.manual_seed(7)
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.uniform_(0.25, 1.75)
            else:
                t.fill_(5)
    return module


def walk(obj, path):
    for part in path.split(".") if path else []:
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def expected_case(path, fmt, select, selected):
    # Trusted file (written just now): a full unpickle is fine here.
    kwargs = {"weights_only": False} if "weights_only" in torch.load.__code__.co_varnames else {}
    loaded = torch.load(path, **kwargs)
    module = walk(loaded, selected)
    tensors = [[name, dtype_name(t.dtype), list(t.shape),
                "%016x" % xxhash.xxh64(tensor_bytes(t)).intdigest()]
               for name, t in module.state_dict().items()]
    modules = [[(selected + "." + p if p else selected) if selected else p, class_name(m)]
               for p, m in module.named_modules(remove_duplicate=False)]
    return {"file": os.path.basename(path), "format": fmt, "select": select,
            "selected": selected, "tensors": tensors, "modules": modules}


def cases():
    """(name, object to save, --select argument, path it selects)."""
    from torchvision.models.vision_transformer import VisionTransformer
    detector = randomize(Detector())
    return [
        ("resnet18", randomize(torchvision.models.resnet18()), "", ""),
        ("mobilenet_v2", randomize(torchvision.models.mobilenet_v2()), "", ""),
        # Keeps norm_layer as a functools.partial.
        ("vit_tiny", randomize(VisionTransformer(image_size=32, patch_size=16, num_layers=2,
                                                 num_heads=2, hidden_dim=8, mlp_dim=16,
                                                 num_classes=5)), "", ""),
        ("the_model_class", randomize(TheModelClass()), "", ""),
        ("data_parallel", nn.DataParallel(randomize(TheModelClass())), "", ""),
        ("containers", randomize(Containers()), "", ""),
        ("weight_norm", detector, "", ""),
        ("in_dict", {"model": detector, "epoch": 3, "lr": 0.01}, "model", "model"),
        ("in_dict_auto", {"model": detector, "epoch": 3}, "", "model"),
        ("submodule", {"model": detector, "epoch": 3}, "model.backbone", "model.backbone"),
    ]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    expected = {"torch": torch.__version__, "torchvision": torchvision.__version__, "cases": []}
    all_cases = cases()
    for name, obj, select, selected in all_cases:
        for fmt, zipped in (("torch_zip", True), ("torch_legacy", False)):
            path = os.path.join(out, "%s.%s.pt" % (name, "zip" if zipped else "legacy"))
            torch.save(obj, path, _use_new_zipfile_serialization=zipped)
            expected["cases"].append(expected_case(path, fmt, select, selected))
    # Pickle protocol 4 (STACK_GLOBAL, MEMOIZE, FRAME) for one model.
    path = os.path.join(out, "containers.p4.pt")
    torch.save(dict((c[0], c[1]) for c in all_cases)["containers"], path, pickle_protocol=4)
    expected["cases"].append(expected_case(path, "torch_zip", "", ""))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
