"""Seed corpora for the fuzzers, made with real PyTorch: OUT/<fuzzer>/<file>.

request_fuzzer's seeds (serialized protos) come from request_seed_writer.
"""
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch


def safetensors_bytes(tensors):
    header, offset, data = {"__metadata__": {"format": "pt"}}, 0, b""
    for name, t in tensors.items():
        raw = t.contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16"}[t.dtype],
                        "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def legacy_seeds(sd, views, full):
    """The legacy format (torch < 1.6): a pickle chain, then raw storages."""
    torch.manual_seed(1)
    base = torch.arange(24, dtype=torch.float32)
    objects = {
        "state_dict": sd,
        "views": views,  # storages shared between tensors, offsets, transposes
        "full": full,    # optimizer state, scalars, strings, None
        "dtypes": {"f16": torch.ones(3, dtype=torch.float16), "f64": torch.zeros(2, dtype=torch.float64),
                   "bf16": torch.ones(2, dtype=torch.bfloat16), "i8": torch.tensor([-1, 2], dtype=torch.int8),
                   "u8": torch.tensor([255], dtype=torch.uint8), "i64": torch.tensor([2**40]),
                   "bool": torch.tensor([True, False]), "c64": torch.ones(1, dtype=torch.complex64)},
        "odd_shapes": {"empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5),
                       "strided": base.view(4, 6)[:, ::2], "expanded": torch.ones(1, 3).expand(4, 3)},
        "list": [base, base[3:7], (1, "x", None)],
        "parameter": torch.nn.Parameter(torch.ones(2, 2)),
    }
    out = {}
    for name, obj in objects.items():
        for proto in (2, 4):
            buf = io.BytesIO()
            torch.save(obj, buf, pickle_protocol=proto, _use_new_zipfile_serialization=False)
            out[f"{name}_p{proto}"] = buf.getvalue()
    return out


class Tiny(torch.nn.Module):
    """A __main__ module with what whole-model files hold: containers, a
    BatchNorm, an RNN, a None parameter, a non-persistent buffer, weight_norm's
    hook object and a functools.partial attribute."""

    def __init__(self):
        super().__init__()
        import functools
        self.seq = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 1)})
        self.rnn = torch.nn.GRU(2, 2)
        self.wn = torch.nn.utils.weight_norm(torch.nn.Linear(2, 2))
        self.seq[0].bias = None
        self.register_buffer("tmp", torch.zeros(1), persistent=False)
        self.norm_layer = functools.partial(torch.nn.LayerNorm, eps=1e-6)


def whole_model_seeds():
    """torch.save(model) (whole-model files), zip and legacy."""
    out = {}
    for name, obj in (("tiny", Tiny()), ("in_dict", {"model": Tiny(), "epoch": 1}),
                      ("dp", torch.nn.DataParallel(torch.nn.Linear(2, 2)))):
        for zipped in (True, False):
            buf = io.BytesIO()
            torch.save(obj, buf, _use_new_zipfile_serialization=zipped)
            out["whole_%s_%s" % (name, "zip" if zipped else "legacy")] = buf.getvalue()
    return out


def index_seeds():
    """model.safetensors.index.json files as transformers' save_pretrained
    writes them (json.dumps(index, indent=2, sort_keys=True) + newline),
    naming the shards that safetensors_index_fuzzer.cc writes."""
    shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    weight_map = {"embed.weight": shard1, "norm.weight": shard1,
                  "head.weight": shard2, "head.bias": shard2}

    def index(obj):
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

    return {
        "transformers": index({"metadata": {"total_size": 60}, "weight_map": weight_map}),
        "no_metadata": index({"weight_map": weight_map}),
        "metadata_mixed": index({"metadata": {"total_size": 60, "format": "pt", "nested": {"a": [1]}},
                                 "weight_map": weight_map}),
        "one_shard": index({"weight_map": {"head.weight": shard2, "head.bias": shard2}}),
        "missing_tensor": index({"weight_map": dict(weight_map, extra=shard2)}),
        "path_escape": index({"weight_map": {"head.weight": "../" + shard2}}),
        "compact": json.dumps({"weight_map": weight_map}, separators=(",", ":")).encode(),
    }


def side_channel_seeds():
    """side_channel_fuzzer: a mode byte (0 request decoder, 1 reply decoder,
    2 socketpair round trip with the server's handler), then one message in
    core/ipc/fd_channel.h's format."""
    def request(handle):
        return b"WDH1" + struct.pack("<I", len(handle)) + handle

    def reply(code, total, first, error=b""):
        return b"WDF1" + struct.pack("<IIII", code, total, first, len(error)) + error

    return {
        "request": b"\0" + request(b"00112233445566778899aabbccddeeff"),
        "reply_ok": b"\1" + reply(0, 3, 0),
        "reply_batch": b"\1" + reply(0, 600, 250),
        "reply_error": b"\1" + reply(5, 0, 0, b"unknown handle"),
        "round_trip": b"\2" + request(b"fuzz-handle"),
        "round_trip_many": b"\2" + request(b"fuzz-handle-many"),
        "round_trip_unknown": b"\2" + request(b"ffff"),
    }


def main(out):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    sd = model.state_dict()
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    views = {"a": x, "b": x[1:], "t": x.t(), "p": torch.nn.Parameter(torch.ones(2))}
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    full = {"model_state_dict": sd, "optimizer_state_dict": opt.state_dict(), "epoch": 3,
            "loss": torch.tensor(0.5), "name": "run", "flag": True, "none": None}

    files = {}
    for i, (obj, proto, zipped) in enumerate([(sd, 2, True), (views, 2, True), (full, 2, True),
                                              (full, 4, True), (sd, 2, False), (views, 2, False)]):
        buf = io.BytesIO()
        torch.save(obj, buf, pickle_protocol=proto, _use_new_zipfile_serialization=zipped)
        files[f"{'zip' if zipped else 'legacy'}{i}"] = buf.getvalue()

    for name in ("zip_reader", "torch_file", "torch_legacy", "unpickler", "whole_model",
                 "safetensors", "safetensors_index", "rules", "side_channel"):
        os.makedirs(os.path.join(out, name), exist_ok=True)

    def put(fuzzer, name, data):
        with open(os.path.join(out, fuzzer, name), "wb") as f:
            f.write(data)

    for name, data in files.items():
        put("torch_file", name, data)
        if name.startswith("zip"):
            put("zip_reader", name, data)
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
                put("unpickler", name, z.read(pkl))
    put("unpickler", "plain2", pickle.dumps({"a": [1, 2.5, "s", None, True, (1, 2)]}, protocol=2))
    put("unpickler", "plain4", pickle.dumps({"a": [1, 2.5, "s", None, True, {1, 2}]}, protocol=4))
    put("safetensors", "sd", safetensors_bytes(dict(sd)))
    put("safetensors", "mixed", safetensors_bytes({"h": torch.ones(2, 2, dtype=torch.float16),
                                                   "e": torch.zeros(0, 3), "s": torch.tensor(1.0)}))
    for name, data in legacy_seeds(sd, views, full).items():
        put("torch_legacy", name, data)
    for name, data in index_seeds().items():
        put("safetensors_index", name, data)
    for name, data in whole_model_seeds().items():
        put("torch_file" if name.endswith("zip") else "torch_legacy", name, data)
        if name.endswith("zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
                put("whole_model", name, z.read(pkl))
    put("rules", "rules", b"strip_prefix:module.\nadd_prefix:backbone.\nregex:^layer(\\d+)\\.=stage\\1.\n")
    for name, data in side_channel_seeds().items():
        put("side_channel", name, data)


if __name__ == "__main__":
    main(sys.argv[1])
