"""A small safetensors writer and reader for the tests, written from the spec.

The Python in Debian bookworm has no `safetensors` package, so the tests carry
their own: https://github.com/huggingface/safetensors#format
  8 bytes: N, little-endian u64 header size
  N bytes: JSON {name: {"dtype", "shape", "data_offsets": [begin, end]},
                 "__metadata__": {str: str}}, padded with spaces to 8 bytes
  rest:    tensor bytes, offsets relative to the end of the header
"""

import json
import struct

import numpy as np
import torch

# PyTorch dtype -> safetensors code, as core/checkpoint/dtype.cc names them.
CODES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.complex64: "C64",
    torch.complex128: "C128",
}
DTYPES = {code: dtype for dtype, code in CODES.items()}


def tensor_bytes(t):
    """Row-major bytes of `t` (what safetensors stores and what checksums hash)."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16
        t = t.view(torch.int16)
    return t.reshape(-1).numpy().tobytes()


def tensor_from_bytes(data, dtype, shape):
    """Inverse of tensor_bytes."""
    if dtype == torch.bfloat16:
        flat = torch.frombuffer(bytearray(data), dtype=torch.int16).view(torch.bfloat16)
    elif len(data) == 0:
        flat = torch.empty(0, dtype=dtype)
    else:
        flat = torch.frombuffer(bytearray(data), dtype=dtype)
    return flat.reshape(shape)


def encode(tensors, metadata=None):
    """Bytes of a safetensors file holding `tensors` (name -> tensor) in order.

    Data is laid out in the dict's order, so header order, offset order and the
    given order agree.
    """
    header = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, t in tensors.items():
        data = tensor_bytes(t)
        header[name] = {
            "dtype": CODES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata))


def read(path):
    """Returns (ordered dict name -> tensor in header order, metadata or None).

    Validates what the spec requires, so that a file our C++ writer produced
    and this reader accepts is a conforming file.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header size")
    (n,) = struct.unpack("<Q", data[:8])
    if n > 100 * 1024 * 1024 or 8 + n > len(data):
        raise ValueError(f"{path}: header size {n} out of range")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"{path}: duplicate keys in header")
        return dict(pairs)

    header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    body = data[8 + n:]
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name)
                   for name, info in header.items())
    expected_begin = 0
    for begin, end, name in spans:
        if begin != expected_begin or end < begin:
            raise ValueError(f"{path}: {name}: offsets [{begin}, {end}] not contiguous")
        expected_begin = end
    if expected_begin != len(body):
        raise ValueError(f"{path}: data is {len(body)} bytes, offsets cover {expected_begin}")
    tensors = {}
    for name, info in header.items():
        dtype = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        numel = int(np.prod(info["shape"], dtype=np.int64)) if info["shape"] else 1
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if numel * itemsize != end - begin:
            raise ValueError(f"{path}: {name}: {end - begin} bytes for shape {info['shape']}")
        tensors[name] = tensor_from_bytes(body[begin:end], dtype, info["shape"])
    return tensors, metadata
