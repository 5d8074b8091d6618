#!/usr/bin/python3
"""Writes a Hugging Face hub cache the way huggingface_hub lays one out.

usage: make_hf_cache.py OUT_DIR

OUT_DIR/hub/...          the cache, served as a repository:
  models--org--tiny      refs/main and four snapshots whose files are relative
                         symlinks into blobs/ (named by content sha256):
                         main: sharded safetensors (index + 2 shards), the
                         OLDEST snapshot dir by mtime; "bin": pytorch_model.bin
                         (newest mtime); "both": model.safetensors beside a
                         pytorch_model.bin; "partial": config.json only
  models--org--nomain    refs/main names a snapshot that is not there
  models--org--escape    model.safetensors links to OUT_DIR/outside/
  models--org--shards    sharded; its second shard links to OUT_DIR/outside/
  datasets--org--data    not a model
OUT_DIR/outside/model.safetensors
OUT_DIR/expected.json    revisions, and per model and version the tensors as
                         torch sees them (name, dtype, shape, nbytes, xxh64)
"""
import hashlib
import json
import os
import shutil
import sys

import torch
import xxhash

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
import safetensors_io  # noqa: E402  (tests/data helper; Debian has no safetensors)


def describe(state_dict):
    return [{
        "name": name,
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "nbytes": t.numel() * t.element_size(),
        "checksum": xxhash.xxh64(safetensors_io.tensor_bytes(t)).hexdigest(),
    } for name, t in state_dict.items()]


def rev(label):
    return hashlib.sha1(label.encode()).hexdigest()  # a commit hash's shape


class Repo:
    """One models--ORG--NAME directory."""

    def __init__(self, hub, name):
        self.dir = os.path.join(hub, name)
        os.makedirs(os.path.join(self.dir, "blobs"))
        os.makedirs(os.path.join(self.dir, "refs"))

    def set_main(self, revision):
        with open(os.path.join(self.dir, "refs", "main"), "w") as f:
            f.write(revision)  # huggingface_hub writes no newline

    def snapshot(self, revision, files):
        """files: name -> bytes, stored as blobs and linked like the hub does."""
        snap = os.path.join(self.dir, "snapshots", revision)
        os.makedirs(snap)
        for name, data in files.items():
            blob = hashlib.sha256(data).hexdigest()
            with open(os.path.join(self.dir, "blobs", blob), "wb") as f:
                f.write(data)
            os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join(snap, name))
        return snap


def torch_bytes(state_dict, path):
    torch.save(state_dict, path)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def main():
    out = sys.argv[1]
    hub = os.path.join(out, "hub")
    outside = os.path.join(out, "outside")
    shutil.rmtree(hub, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)
    os.makedirs(os.path.join(hub, ".locks"))
    os.makedirs(outside)
    with open(os.path.join(hub, "version.txt"), "w") as f:
        f.write("1")
    torch.manual_seed(13)
    config = json.dumps({"model_type": "tiny"}).encode()
    expected = {"revisions": {}, "models": {}}

    tiny = Repo(hub, "models--org--tiny")
    revs = {k: rev(k) for k in ("main", "bin", "both", "partial")}
    expected["revisions"] = revs
    shard1 = {"embed.weight": torch.randn(8, 4)}
    shard2 = {"head.weight": torch.randn(3, 4), "head.bias": torch.randn(3).double()}
    index = {
        "metadata": {"total_size": sum(t.numel() * t.element_size()
                                       for t in list(shard1.values()) + list(shard2.values()))},
        "weight_map": {**{k: "model-00001-of-00002.safetensors" for k in shard1},
                       **{k: "model-00002-of-00002.safetensors" for k in shard2}},
    }
    snaps = {}
    snaps["main"] = tiny.snapshot(revs["main"], {
        "config.json": config,
        "model.safetensors.index.json": json.dumps(index, indent=2).encode(),
        "model-00001-of-00002.safetensors": safetensors_io.encode(shard1),
        "model-00002-of-00002.safetensors": safetensors_io.encode(shard2),
    })
    bin_state = torch.nn.Linear(5, 2).state_dict()
    snaps["bin"] = tiny.snapshot(revs["bin"], {
        "config.json": config,  # the same blob as main's, as the hub shares it
        "pytorch_model.bin": torch_bytes(bin_state, os.path.join(out, "tmp.bin")),
    })
    both_st = {"preferred": torch.arange(6, dtype=torch.int32).reshape(2, 3)}
    both_bin = {"not_preferred": torch.zeros(2)}
    snaps["both"] = tiny.snapshot(revs["both"], {
        "model.safetensors": safetensors_io.encode(both_st),
        "pytorch_model.bin": torch_bytes(both_bin, os.path.join(out, "tmp.bin")),
    })
    snaps["partial"] = tiny.snapshot(revs["partial"], {"config.json": config})
    tiny.set_main(revs["main"])
    # refs/main's snapshot is the oldest dir: its version must come from
    # refs/main, not from the mtime order that numbers the others.
    for i, key in enumerate(("main", "both", "bin", "partial")):
        os.utime(snaps[key], (1_600_000_000 + 100 * i, 1_600_000_000 + 100 * i))
    expected["models"]["org--tiny"] = {
        "3": describe({**shard1, **shard2}),
        "2": describe(bin_state),
        "1": describe(both_st),
    }

    nomain = Repo(hub, "models--org--nomain")
    nomain.snapshot(rev("nomain-old"), {"model.safetensors": safetensors_io.encode(shard1)})
    nomain.set_main(rev("nomain-missing"))
    expected["nomain_main"] = rev("nomain-missing")

    escape = Repo(hub, "models--org--escape")
    escape_state = {"secret": torch.randn(4)}
    safetensors_io.write(os.path.join(outside, "model.safetensors"), escape_state)
    snap = os.path.join(escape.dir, "snapshots", rev("escape"))
    os.makedirs(snap)
    # hub/models--org--escape/snapshots/REV -> OUT_DIR/outside
    os.symlink(os.path.join("..", "..", "..", "..", "outside", "model.safetensors"),
               os.path.join(snap, "model.safetensors"))
    escape.set_main(rev("escape"))
    expected["revisions"]["escape"] = rev("escape")
    expected["models"]["org--escape"] = {"1": describe(escape_state)}

    shards = Repo(hub, "models--org--shards")
    snap = shards.snapshot(rev("shards"), {
        "model.safetensors.index.json": json.dumps(index).encode(),
        "model-00001-of-00002.safetensors": safetensors_io.encode(shard1),
    })
    safetensors_io.write(os.path.join(outside, "model-00002-of-00002.safetensors"), shard2)
    os.symlink(os.path.join("..", "..", "..", "..", "outside", "model-00002-of-00002.safetensors"),
               os.path.join(snap, "model-00002-of-00002.safetensors"))
    shards.set_main(rev("shards"))
    expected["models"]["org--shards"] = {"1": describe({**shard1, **shard2})}

    os.makedirs(os.path.join(hub, "datasets--org--data", "refs"))

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
