#!/usr/bin/python3
"""Writes real PyTorch checkpoints and what Python sees in them.

Usage: /usr/bin/python3 make_checkpoints.py OUTDIR

Every file is written by Debian's PyTorch (torch.save, zip and legacy, pickle
protocols 2 and 4) or, for safetensors, by the spec-conformant writer in
safetensors_io.py. OUTDIR/expected.json then describes each case as Python
reads it back: the format, the state dict chosen (DESIGN.md section 2), its
tensors in order (name, dtype, shape, nbytes, xxHash64 of the row-major bytes)
and the metadata leaves, as `weightctl inspect --json --checksums` prints them.

differential_test.py imports generate() to get the tensors themselves too.
"""

import collections
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torchvision
import xxhash

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "examples"))
import safetensors_io  # noqa: E402
from lenet import LeNet, train_steps  # noqa: E402  (examples/lenet.py)

AUTO_SELECT_KEYS = ("state_dict", "model_state_dict", "model", "module")


# --- what Python sees -------------------------------------------------------

def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def checksum(t):
    return "%016x" % xxhash.xxh64(safetensors_io.tensor_bytes(t)).intdigest()


def key_name(key):
    """A dict key inside a dotted name, as core/checkpoint/select.cc writes it."""
    if isinstance(key, bool):
        return "True" if key else "False"
    if key is None:
        return "None"
    return str(key)


def is_container(v):
    return isinstance(v, (dict, list, tuple))


def is_state_dict(v):
    return isinstance(v, dict) and all(isinstance(x, torch.Tensor) for x in v.values())


def flatten(node, prefix=""):
    """(dotted name, tensor) for every tensor below `node`, in order."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    out = []
    for key, child in items:
        name = key_name(key) if not prefix else prefix + "." + key_name(key)
        if isinstance(child, torch.Tensor):
            out.append((name, child.detach()))
        elif is_container(child):
            out.extend(flatten(child, name))
    return out


def walk(root, path):
    """Follows a dotted path; dict keys may contain dots (longest match wins)."""
    node, rest = root, path
    while rest:
        if isinstance(node, dict):
            best = None
            for key in node:
                name = key_name(key)
                if rest.startswith(name) and (len(rest) == len(name) or rest[len(name)] == "."):
                    if best is None or len(name) > len(key_name(best)):
                        best = key
            if best is None:
                raise KeyError(path)
            used, node = len(key_name(best)), node[best]
        else:
            part = rest.split(".", 1)[0]
            used, node = len(part), node[int(part)]
        rest = rest[used + 1:]
    return node


def select(root, path):
    """(path used, selected node), as DESIGN.md section 2 chooses it."""
    if path:
        return path, walk(root, path)
    if is_state_dict(root):
        return "", root
    for key in AUTO_SELECT_KEYS:
        if isinstance(root, dict) and isinstance(root.get(key), dict):
            return key, root[key]
    raise KeyError("no state dict")


def scalar(t):
    value = t.item()
    if isinstance(value, complex):
        return [value.real, value.imag]
    return value


_DISCARD = object()


def metadata_of(node, skip):
    """Non-tensor leaves outside `skip`, as core/checkpoint/select.cc shows them."""
    if node is skip:
        return _DISCARD
    if isinstance(node, torch.Tensor):
        return scalar(node) if node.dim() == 0 else _DISCARD
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            child = metadata_of(value, skip)
            if child is not _DISCARD:
                out[key_name(key)] = child
        return out
    if isinstance(node, (list, tuple, set)):
        out = []
        for item in node:
            child = metadata_of(item, skip)
            if child is _DISCARD and isinstance(item, torch.Tensor):
                child = "<tensor %s [%s]>" % (dtype_name(item.dtype),
                                              ", ".join(str(d) for d in item.shape))
            if child is not _DISCARD:
                out.append(child)
        return out
    if isinstance(node, complex):
        return [node.real, node.imag]
    if isinstance(node, bytes):
        return "<bytes of length %d>" % len(node)
    if isinstance(node, torch.dtype):
        return dtype_name(node)
    if isinstance(node, torch.device):
        return str(node)
    return node


def metadata(root, skip, file_metadata=None):
    out = metadata_of(root, skip)
    if not isinstance(out, dict):
        out = {}
    if file_metadata:
        out["__metadata__"] = dict(file_metadata)
    return out


def json_equal(a, b, path="metadata"):
    """Compares JSON values, floats with float32 tolerance. Returns a diff or None."""
    if isinstance(a, bool) or isinstance(b, bool):
        return None if a is b else f"{path}: {a!r} != {b!r}"
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12):
            return None
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            diff = json_equal(a[key], b[key], f"{path}.{key}")
            if diff:
                return diff
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)} items ({a!r} vs {b!r})"
        for i, (x, y) in enumerate(zip(a, b)):
            diff = json_equal(x, y, f"{path}[{i}]")
            if diff:
                return diff
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


# --- the cases ----------------------------------------------------------------

def describe_tensors(tensors):
    """[(name, tensor)] as `weightctl inspect --json --checksums` lists them."""
    return [{
        "name": name,
        "dtype": dtype_name(t.dtype),
        "shape": list(t.shape),
        "nbytes": t.nelement() * t.element_size(),
        "checksum": checksum(t),
    } for name, t in tensors]


class Case:
    """One file and what inspecting it must show.

    file: path relative to OUTDIR handed to weightctl; select_arg: --select
    value or None; tensors: [(name, tensor)] as Python reads them back;
    metadata: expected JSON, or None where it is not compared.
    """

    def __init__(self, name, file, fmt, select_arg=None, compare_metadata=True):
        self.name = name
        self.file = file
        self.format = fmt
        self.select_arg = select_arg
        self.compare_metadata = compare_metadata
        self.select = None
        self.tensors = None
        self.metadata = None

    def expected_json(self):
        return {
            "name": self.name,
            "file": self.file,
            "select_arg": self.select_arg,
            "format": self.format,
            "select": self.select,
            "tensors": describe_tensors(self.tensors),
            "metadata": self.metadata,
        }


def seeded(seed):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def torchvision_state_dict(arch, seed):
    seeded(seed)
    model = getattr(torchvision.models, arch)(weights=None)
    return model.state_dict()


def lenet(seed=0):
    seeded(seed)
    return LeNet()


def training_checkpoint(loss_as_tensor):
    """A full checkpoint after one Adam step, the tutorial way."""
    model = lenet(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = train_steps(model, optimizer, steps=1, batch_size=4)
    return {
        "epoch": 3,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": loss.detach() if loss_as_tensor else loss.item(),
        "run_name": "lenet-adam",
        "finished": False,
        "best_metric": None,
        "history": [2.5, 2.25, 2.125],
        "schedule": {"milestones": [10, 20], "gamma": 0.1},
    }


def adamw_scheduler_checkpoint():
    """A full checkpoint with AdamW and a cosine LR scheduler after two steps:
    torch 2.x adds tensor `step`s and None-valued `foreach`/`fused`. (Not
    OneCycleLR: torch 1.13 puts a bound method in its state dict.)"""
    model = lenet(3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10, eta_min=1e-5)
    for _ in range(2):
        train_steps(model, optimizer, steps=1, batch_size=4)
        scheduler.step()
    return {
        "epoch": 2,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "torch_version": torch.__version__,  # a TorchVersion (str subclass): read as its text
    }


def compiled_state_dict():
    """The state dict of a torch.compile'd module (torch >= 2.0): every name
    carries "_orig_mod."; compiling happens at the first call, so none runs."""
    return torch.compile(lenet(21)).state_dict()


def lightning_checkpoint():
    """What PyTorch Lightning saves: state_dict with a "model." prefix."""
    model = lenet(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return {
        "epoch": 4,
        "global_step": 1000,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": collections.OrderedDict(
            ("model." + k, v) for k, v in model.state_dict().items()),
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hyper_parameters": {"lr": 0.001, "layers": [64, 32], "name": "lenet"},
    }


def every_dtype():
    g = seeded(3)
    f = torch.randn(3, 4, generator=g)
    return collections.OrderedDict([
        ("float16", f.half()),
        ("float32", f.clone()),
        ("float64", f.double()),
        ("bfloat16", f.bfloat16()),
        ("int8", torch.randint(-128, 128, (5,), dtype=torch.int8, generator=g)),
        ("int16", torch.randint(-2**15, 2**15, (2, 3), dtype=torch.int16, generator=g)),
        ("int32", torch.randint(-2**31, 2**31 - 1, (7,), dtype=torch.int32, generator=g)),
        ("int64", torch.randint(-2**62, 2**62, (2, 2), dtype=torch.int64, generator=g)),
        ("uint8", torch.randint(0, 256, (3, 3), dtype=torch.uint8, generator=g)),
        ("bool", torch.randn(9, generator=g) > 0),
        ("complex64", torch.randn(2, 3, dtype=torch.complex64, generator=g)),
        ("complex128", torch.randn(4, dtype=torch.complex128, generator=g)),
    ])


def views():
    """Views of shared storages: offsets, transposes, strides, stride 0."""
    x = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    y = torch.arange(100, dtype=torch.int64)
    z = torch.arange(3, dtype=torch.float64)
    return collections.OrderedDict([
        ("a", x),
        ("b", x[1:]),
        ("c", x.t()),
        ("d", x[:, 1]),
        ("e", x[1:3, 2:4]),
        ("f", x.view(-1)[3:7]),
        ("g", y[10:20]),           # a slice of a storage nothing else uses
        ("h", y[::7]),
        ("i", z.expand(4, 3)),     # stride 0
        ("j", x.t()[::2, 1:]),
    ])


def parameters():
    seeded(4)
    return collections.OrderedDict([
        ("weight", nn.Parameter(torch.randn(3, 3))),
        ("frozen", nn.Parameter(torch.randn(3), requires_grad=False)),
        ("buffer", torch.randn(2)),
    ])


def zero_dim_and_empty():
    return collections.OrderedDict([
        ("scalar_float", torch.tensor(3.5)),
        ("scalar_int", torch.tensor(7)),
        ("scalar_bool", torch.tensor(True)),
        ("scalar_half", torch.tensor(-0.25, dtype=torch.float16)),
        ("empty", torch.empty(0)),
        ("empty_2d", torch.zeros(0, 4)),
        ("empty_middle", torch.zeros(3, 0, 2, dtype=torch.int32)),
        ("one", torch.ones(1)),
    ])


def ema_checkpoint():
    return {
        "step": 100,
        "model": lenet(5).state_dict(),
        "ema": lenet(6).state_dict(),
        "trainer": {"ema": parameters(), "decay": 0.999},
    }


def torch_save(obj, **kwargs):
    def write(path):
        torch.save(obj, path, **kwargs)
    return write


def safetensors_save(tensors, metadata=None):
    def write(path):
        safetensors_io.write(path, collections.OrderedDict(
            (k, v.detach()) for k, v in tensors.items()), metadata)
    return write


def sharded_save(tensors, shards):
    """A sharded set: model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
    def write(path):
        directory = os.path.dirname(path)
        names = list(tensors)
        per = math.ceil(len(names) / shards)
        weight_map = collections.OrderedDict()
        total = 0
        for i in range(shards):
            shard = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
            part = collections.OrderedDict((n, tensors[n]) for n in names[i * per:(i + 1) * per])
            safetensors_io.write(os.path.join(directory, shard), part, {"format": "pt"})
            for n, t in part.items():
                weight_map[n] = shard
                total += t.nelement() * t.element_size()
        with open(path, "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return write


def case_list():
    """(Case, writer) pairs. Files are relative to OUTDIR."""
    zip_, legacy, st = "torch_zip", "torch_legacy", "safetensors"
    out = []

    def add(case, writer):
        out.append((case, writer))

    for arch, seed in (("resnet18", 10), ("mobilenet_v3_small", 11), ("squeezenet1_0", 12),
                       ("densenet121", 13)):
        add(Case(arch, arch + ".pt", zip_), torch_save(torchvision_state_dict(arch, seed)))
    add(Case("lenet", "lenet.pt", zip_), torch_save(lenet().state_dict()))
    add(Case("training_float_loss", "training_float_loss.pt", zip_),
        torch_save(training_checkpoint(False)))
    add(Case("training_tensor_loss", "training_tensor_loss.pth", zip_),
        torch_save(training_checkpoint(True)))
    add(Case("training_select_optimizer", "training_select_optimizer.pt", zip_,
             select_arg="optimizer_state_dict"), torch_save(training_checkpoint(True)))
    add(Case("training_adamw_scheduler", "training_adamw_scheduler.pt", zip_),
        torch_save(adamw_scheduler_checkpoint()))
    if hasattr(torch, "compile"):  # torch 2.x only: the trixie lane
        add(Case("compiled", "compiled.pt", zip_), torch_save(compiled_state_dict()))
    add(Case("lightning", "lightning.ckpt", zip_), torch_save(lightning_checkpoint()))
    add(Case("data_parallel", "data_parallel.pt", zip_),
        torch_save(nn.DataParallel(lenet(7)).state_dict()))
    add(Case("dtypes", "dtypes.pt", zip_), torch_save(every_dtype()))
    add(Case("views", "views.pt", zip_), torch_save(views()))
    add(Case("parameters", "parameters.pt", zip_), torch_save(parameters()))
    add(Case("named_parameters", "named_parameters.pt", zip_),
        torch_save(collections.OrderedDict(lenet(8).named_parameters())))
    add(Case("zero_dim_and_empty", "zero_dim_and_empty.pt", zip_),
        torch_save(zero_dim_and_empty()))
    add(Case("select_auto", "ema_auto.pt", zip_), torch_save(ema_checkpoint()))
    add(Case("select_ema", "ema.pt", zip_, select_arg="ema"), torch_save(ema_checkpoint()))
    add(Case("select_nested", "ema_nested.pt", zip_, select_arg="trainer.ema"),
        torch_save(ema_checkpoint()))

    add(Case("protocol4_squeezenet", "protocol4_squeezenet.pt", zip_),
        torch_save(torchvision_state_dict("squeezenet1_0", 14), pickle_protocol=4))
    add(Case("protocol4_training", "protocol4_training.pt", zip_),
        torch_save(training_checkpoint(True), pickle_protocol=4))
    add(Case("protocol4_views", "protocol4_views.pt", zip_),
        torch_save(views(), pickle_protocol=4))

    old = {"_use_new_zipfile_serialization": False}
    add(Case("legacy_resnet18", "legacy_resnet18.pt", legacy),
        torch_save(torchvision_state_dict("resnet18", 15), **old))
    add(Case("legacy_training", "legacy_training.pt", legacy),
        torch_save(training_checkpoint(False), **old))
    add(Case("legacy_dtypes", "legacy_dtypes.pt", legacy), torch_save(every_dtype(), **old))
    add(Case("legacy_views", "legacy_views.pt", legacy), torch_save(views(), **old))
    add(Case("legacy_parameters", "legacy_parameters.pt", legacy),
        torch_save(parameters(), **old))
    add(Case("legacy_zero_dim_and_empty", "legacy_zero_dim_and_empty.pt", legacy),
        torch_save(zero_dim_and_empty(), **old))
    add(Case("legacy_protocol4", "legacy_protocol4.pt", legacy),
        torch_save(lenet(9).state_dict(), pickle_protocol=4, **old))

    add(Case("safetensors_lenet", "lenet.safetensors", st),
        safetensors_save(lenet().state_dict(), {"format": "pt", "source": "make_checkpoints"}))
    add(Case("safetensors_dtypes", "dtypes.safetensors", st), safetensors_save(every_dtype()))
    add(Case("safetensors_zero_dim_and_empty", "zero_dim_and_empty.safetensors", st),
        safetensors_save(zero_dim_and_empty()))
    add(Case("safetensors_mobilenet", "mobilenet_v3_small.safetensors", st),
        safetensors_save(torchvision_state_dict("mobilenet_v3_small", 16)))
    # What the sharded reader reports as metadata is its own choice: not compared.
    add(Case("safetensors_sharded", "sharded/model.safetensors.index.json",
             "safetensors_sharded", compare_metadata=False),
        sharded_save(torchvision_state_dict("squeezenet1_0", 17), 3))
    return out


def read_back(case, path):
    """(root object, file metadata) as Python reads the file."""
    if case.format == "safetensors":
        return safetensors_io.read(path)
    if case.format == "safetensors_sharded":
        with open(path) as f:
            index = json.load(f)
        root = collections.OrderedDict()
        for shard in dict.fromkeys(index["weight_map"].values()):
            tensors, _ = safetensors_io.read(os.path.join(os.path.dirname(path), shard))
            root.update(tensors)
        return {n: root[n] for n in index["weight_map"]}, None
    # Trusted: this script wrote the file. torch 2.6 defaults to
    # weights_only=True, which refuses e.g. protocol-4 legacy pickles.
    return torch.load(path, map_location="cpu", weights_only=False), None


def generate(outdir):
    """Writes every case under `outdir` and expected.json; returns the Cases."""
    os.makedirs(outdir, exist_ok=True)
    cases = []
    for case, write in case_list():
        path = os.path.join(outdir, case.file)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write(path)
        root, file_metadata = read_back(case, path)
        case.select, node = select(root, case.select_arg)
        case.tensors = flatten(node)
        if case.compare_metadata:
            case.metadata = metadata(root, node, file_metadata)
        cases.append(case)
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump([c.expected_json() for c in cases], f, indent=1)
    return cases


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: make_checkpoints.py OUTDIR\n")
        return 2
    cases = generate(argv[1])
    print("wrote %d cases to %s" % (len(cases), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
