#!/usr/bin/python3
"""Writes a corpus of malformed and disallowed checkpoint files.

Usage: /usr/bin/python3 make_bad_corpus.py OUTDIR

Each file starts from real torch.save (zip and legacy) or safetensors output
and is corrupted by byte surgery, or is a hand-written pickle / zip built from
opcodes and records (hostile_corpus.py adds pickles that try to run code,
bombs and polyglots). OUTDIR/manifest.json lists
  "bad":  [{"file", "expect", "what"}]  weightctl inspect must exit 1 with one
          stderr line naming the file and containing `expect`;
  "good": [{"file", "what"}]            controls built by the same helpers,
          which must read fine (so a bad case fails for its own reason);
  "canary": a path that hostile payloads `touch`; it must never exist.
"""

import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# torch/serialization.py: the legacy format opens with these pickles.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


# --- building blocks ------------------------------------------------------------

def zip_bytes(entries, align=64, compress=()):
    """A zip of (name, data) records laid out as PyTorchStreamWriter does.

    Record data starts at a multiple of `align` (padding in the local extra
    field, id "FB"), so tensors are mmap-able; names in `compress` are deflated.
    """
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        name_b = name.encode()
        method = 8 if name in compress else 0
        stored = data
        if method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            stored = c.compress(data) + c.flush()
        offset = len(out)
        header_len = 30 + len(name_b)
        pad = (-(header_len + 4) % align) if align else 0
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad if align else b""
        crc = zlib.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(stored),
                           len(data), len(name_b), len(extra)) + name_b + extra
        out += stored
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                               len(stored), len(data), len(name_b), 0, 0, 0, 0, 0,
                               offset) + name_b
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central),
                       cd_offset, 0)
    return bytes(out)


def eocd_offset(data):
    return data.rindex(b"PK\x05\x06")


def central_offset(data, index=0):
    """Offset of the index-th central directory header."""
    pos = struct.unpack_from("<I", data, eocd_offset(data) + 16)[0]
    for _ in range(index):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + name_len + extra_len + comment_len
    return pos


def patch(data, offset, fmt, *values):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


class StorageRef:
    """A storage as torch.save's persistent_id names it."""

    def __init__(self, key, storage_type=None, numel=0, location="cpu"):
        self.key = key
        self.storage_type = storage_type or torch.FloatStorage
        self.numel = numel
        self.location = location


class FakeTensor:
    """Pickles as torch.save pickles a tensor, with any offset/size/stride."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class Call:
    """Pickles as a call of `fn` with `args` (what a malicious __reduce__ does)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class TorchPickler(pickle.Pickler):
    def __init__(self, f, protocol, persistent):
        super().__init__(f, protocol)
        self.persistent = persistent

    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return self.persistent(obj)
        return None


def torch_pickle(obj, protocol=2, persistent=None):
    f = io.BytesIO()
    persistent = persistent or (
        lambda s: ("storage", s.storage_type, s.key, s.location, s.numel))
    TorchPickler(f, protocol, persistent).dump(obj)
    return f.getvalue()


def torch_zip(pkl, records=None, extra=(), prefix="archive"):
    """A torch.save-style zip around a data.pkl and storage records."""
    entries = [(prefix + "/data.pkl", pkl)]
    for key, data in (records or {}).items():
        entries.append((prefix + "/data/" + key, data))
    entries += list(extra)
    entries.append((prefix + "/version", b"3\n"))
    return zip_bytes(entries)


def fake_tensor_zip(offset, size, stride, numel, record_bytes, storage_type=None, key="0"):
    storage = StorageRef("0", storage_type, numel)
    pkl = torch_pickle(collections.OrderedDict(w=FakeTensor(storage, offset, size, stride)))
    return torch_zip(pkl, {key: b"\x01" * record_bytes})


def saved(obj, **kwargs):
    f = io.BytesIO()
    torch.save(obj, f, **kwargs)
    return f.getvalue()


def pickle_ends(data):
    """End offsets of the consecutive pickles at the start of a legacy file."""
    import pickletools
    ends, pos = [], 0
    f = io.BytesIO(data)
    for _ in range(5):
        f.seek(pos)
        for opcode, _, at in pickletools.genops(f):
            if opcode.name == "STOP":
                pos = at + 1
                break
        ends.append(pos)
    return ends


def safetensors_raw(header, body, header_len=None):
    """safetensors bytes from a header given as JSON text (bytes) and a body."""
    if isinstance(header, (dict, list)):
        header = json.dumps(header).encode()
    header += b" " * (-len(header) % 8)
    n = len(header) if header_len is None else header_len
    return struct.pack("<Q", n) + header + body


def st_header(*entries):
    """entries: (name, dtype, shape, begin, end) -> header dict."""
    return collections.OrderedDict(
        (n, {"dtype": d, "shape": s, "data_offsets": [b, e]}) for n, d, s, b, e in entries)


# --- the corpus -----------------------------------------------------------------

def build(outdir):
    os.makedirs(outdir, exist_ok=True)
    bad, good = [], []

    def write(name, data):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)

    def add(name, data, expect, what):
        if data is not None:
            write(name, data)
        bad.append({"file": name, "expect": expect, "what": what})

    def control(name, data, what):
        write(name, data)
        good.append({"file": name, "what": what})

    torch.manual_seed(0)
    state = collections.OrderedDict(w=torch.randn(4, 4), b=torch.randn(4))
    zip_ok = saved(state)
    legacy_ok = saved(state, _use_new_zipfile_serialization=False)
    st_ok = safetensors_io.encode(state)
    control("control_zip.pt", zip_ok, "torch.save zip")
    control("control_legacy.pt", legacy_ok, "torch.save legacy")
    control("control.safetensors", st_ok, "safetensors")
    control("control_fake_tensor.pt",
            fake_tensor_zip(0, (4, 4), (4, 1), 16, 64), "hand-built torch zip")
    control("control_handmade_pickle.pt",
            torch_zip(b"\x80\x02}q\x00."), "hand-written pickle")

    # Truncated and wrong-magic files.
    n = len(zip_ok)
    add("zip_truncated_half.pt", zip_ok[:n // 2], "end of central directory", "zip cut in the middle")
    add("zip_truncated_eocd.pt", zip_ok[:n - 10], "end of central directory", "zip cut inside the end record")
    add("zip_truncated_30.pt", zip_ok[:30], "end of central directory", "zip cut after the first local header")
    add("empty.pt", b"", "not a torch.save file", "empty file")
    add("wrong_magic.pt", b"this is not a checkpoint at all, just text\n" * 4, "not a torch.save file",
        "neither zip, safetensors nor legacy")
    add("wrong_magic_elf.pt", b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "not a torch.save file", "an ELF header")

    # Bad zip directory. torch.save writes zip64 end records, whose values
    # win over the 32-bit ones, so those are patched in a zip without zip64.
    eocd64 = zip_ok.rindex(b"PK\x06\x06")
    locator = zip_ok.rindex(b"PK\x06\x07")
    add("zip64_cd_offset_out_of_range.pt", patch(zip_ok, eocd64 + 48, "<Q", 2**62),
        "outside the file", "zip64 central directory offset 2^62")
    add("zip64_cd_size_out_of_range.pt", patch(zip_ok, eocd64 + 40, "<Q", 2**40),
        "outside the file", "zip64 central directory size 2^40")
    add("zip64_entry_count_too_big.pt", patch(zip_ok, eocd64 + 24, "<QQ", 2**40, 2**40),
        "cannot hold", "zip64 record claims 2^40 entries")
    add("zip64_locator_out_of_range.pt", patch(zip_ok, locator + 8, "<Q", 2**63),
        "zip64", "zip64 locator points past the file")
    plain = torch_zip(torch_pickle({"w": FakeTensor(StorageRef("0", numel=4), 0, (4,), (1,))}),
                      {"0": b"\0" * 16})
    control("control_plain_zip.pt", plain, "hand-built zip without zip64")
    eocd = eocd_offset(plain)
    add("zip_cd_offset_out_of_range.pt", patch(plain, eocd + 16, "<I", 0x7FFFFFF0),
        "outside the file", "EOCD central directory offset beyond the file")
    add("zip_cd_size_out_of_range.pt", patch(plain, eocd + 12, "<I", 0x7FFFFFF0),
        "outside the file", "EOCD central directory size beyond the file")
    add("zip_entry_count_too_big.pt", patch(plain, eocd + 8, "<HH", 60000, 60000),
        "cannot hold", "EOCD claims more entries than the directory holds")
    cd1 = central_offset(zip_ok, 1)  # archive/data/0 is the second record
    add("zip_local_header_beyond_end.pt", patch(zip_ok, cd1 + 42, "<I", n + 1000), "beyond",
        "central entry's local header offset beyond the file")
    add("zip_entry_size_beyond_end.pt",
        patch(zip_ok, cd1 + 20, "<II", 0x7FFFFF00, 0x7FFFFF00), "beyond",
        "record sizes run past the end of the file")
    local1 = struct.unpack_from("<I", zip_ok, cd1 + 42)[0]
    add("zip_bad_local_signature.pt", patch(zip_ok, local1, "<I", 0x12345678), "local header signature",
        "local header signature clobbered")
    add("zip_no_data_pkl.pt", zip_bytes([("archive/version", b"3\n")]), "data.pkl",
        "zip without data.pkl")
    add("zip_missing_storage_record.pt",
        torch_zip(torch_pickle({"w": FakeTensor(StorageRef("7", numel=4), 0, (4,), (1,))})),
        "data/7", "persistent id names a record the zip lacks")
    add("zip_big_endian.pt",
        torch_zip(torch_pickle({"w": FakeTensor(StorageRef("0", numel=4), 0, (4,), (1,))}),
                  {"0": b"\0" * 16}, extra=[("archive/byteorder", b"big")]),
        "big-endian", "byteorder record says big-endian")
    deflated = zip_bytes(
        [("archive/data.pkl",
          torch_pickle({"w": FakeTensor(StorageRef("0", numel=64), 0, (64,), (1,))})),
         ("archive/data/0", bytes(range(256))), ("archive/version", b"3\n")],
        compress=("archive/data/0",))
    # torch.load reads deflated records too, so this one is a control.
    control("control_deflated_storage.pt", deflated, "deflated storage record")
    cd_d = central_offset(deflated, 1)
    local_d = struct.unpack_from("<I", deflated, cd_d + 42)[0]
    add("zip_deflate_size_lie.pt",
        patch(patch(deflated, cd_d + 24, "<I", 0x7FFFFFF0), local_d + 22, "<I", 0x7FFFFFF0),
        "more than deflate can produce", "deflated record claims 2 GiB inflated")
    data_d = local_d + 30 + sum(struct.unpack_from("<HH", deflated, local_d + 26))
    add("zip_deflate_corrupt.pt", deflated[:data_d] + b"\xff" * 8 + deflated[data_d + 8:],
        "deflate", "deflate stream overwritten")

    # Pickle stream misuse inside an otherwise valid zip.
    def pkl_case(name, pkl, expect, what):
        add(name, torch_zip(pkl), expect, what)

    real_pkl = torch_pickle({"a": 1, "b": [1, 2, 3], "c": "text"})
    pkl_case("pickle_unknown_opcode.pt", b"\x80\x02\xff.", "unknown pickle opcode 0xff", "opcode 0xff")
    pkl_case("pickle_unknown_opcode_mid.pt", b"\x80\x02}q\x00\xf0.", "opcode 0xf0",
             "opcode 0xf0 after a dict")
    pkl_case("pickle_truncated.pt", real_pkl[:len(real_pkl) // 2], "truncated pickle", "pickle cut mid-way")
    pkl_case("pickle_no_stop.pt", b"\x80\x02}q\x00", "truncated pickle", "pickle without STOP")
    pkl_case("pickle_stop_empty_stack.pt", b"\x80\x02.", "stack underflow", "STOP with nothing on stack")
    pkl_case("pickle_pop_empty.pt", b"\x80\x020K\x01.", "stack underflow", "POP on an empty stack")
    pkl_case("pickle_setitem_on_list.pt", b"\x80\x02]K\x01K\x02s.", "SETITEM on a list",
             "SETITEM on a list")
    pkl_case("pickle_setitem_on_int.pt", b"\x80\x02K\x05K\x01K\x02s.", "not a dict",
             "SETITEM on an int")
    pkl_case("pickle_setitems_on_list.pt", b"\x80\x02](K\x01K\x02u.", "SETITEMS on a list",
             "SETITEMS on a list")
    pkl_case("pickle_setitems_odd.pt", b"\x80\x02}(K\x01u.", "odd number",
             "SETITEMS with a key and no value")
    pkl_case("pickle_setitems_no_mark.pt", b"\x80\x02}K\x01K\x02u.", "MARK",
             "SETITEMS without MARK")
    pkl_case("pickle_append_on_dict.pt", b"\x80\x02}K\x01a.", "APPEND on a dict", "APPEND on a dict")
    pkl_case("pickle_appends_on_dict.pt", b"\x80\x02}(K\x01K\x02e.", "APPENDS on a dict",
             "APPENDS on a dict")
    pkl_case("pickle_binget_missing.pt", b"\x80\x02}q\x00h\x05.", "memo has no entry 5",
             "BINGET of a memo slot never PUT")
    pkl_case("pickle_long_binget_missing.pt", b"\x80\x02j\xff\xff\xff\x7f.", "memo has no entry 2147483647",
             "LONG_BINGET of index 2^31-1")
    pkl_case("pickle_deep_lists.pt", b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".",
             "nesting", "100k nested lists by EMPTY_LIST/APPEND")
    pkl_case("pickle_deep_marks.pt", b"\x80\x02" + b"(" * 100000 + b"l" * 100000 + b".",
             "nesting", "100k nested lists by MARK/LIST")
    pkl_case("pickle_deep_dicts.pt",
             b"\x80\x02" + b"}X\x01\x00\x00\x00k" * 99999 + b"}" + b"s" * 99999 + b".",
             "nesting", "100k nested dicts by SETITEM")
    pkl_case("pickle_huge_binunicode.pt", b"\x80\x02X\xff\xff\xff\x7fabc.", "exceeds the limit",
             "BINUNICODE claims 2 GiB")
    pkl_case("pickle_huge_binbytes8.pt", b"\x80\x04\x8e" + struct.pack("<Q", 2**63) + b"x.",
             "exceeds the limit", "BINBYTES8 claims 2^63 bytes")
    pkl_case("pickle_huge_long4.pt", b"\x80\x02\x8b\xff\xff\xff\x7f\x01.", "exceeds the limit",
             "LONG4 claims 2 GiB")
    pkl_case("pickle_huge_frame.pt", b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"}.",
             "FRAME", "FRAME longer than the pickle")
    pkl_case("pickle_bad_protocol.pt", b"\x80\x09}.", "protocol 9", "PROTO 9")

    # Globals outside the allowlist: nothing may run.
    pkl_case("global_os_system.pt", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.",
             "os.system", "GLOBAL os.system, hand-written")
    pkl_case("global_reduce_system.pt",
             torch_pickle({"x": Call(os.system, "echo pwned")}), "posix.system",
             "__reduce__ to os.system (pickled as posix.system)")
    pkl_case("global_builtins_eval.pt",
             torch_pickle(Call(eval, "__import__('os').system('echo pwned')")), "builtins.eval",
             "__reduce__ to builtins.eval (protocol 2: __builtin__.eval)")
    pkl_case("global_subprocess_popen.pt",
             torch_pickle({"x": Call(subprocess.Popen, ["echo", "pwned"])}),
             "commands.Popen", "__reduce__ to subprocess.Popen (protocol 2 names it commands)")
    pkl_case("global_subprocess_popen_protocol4.pt",
             torch_pickle({"x": Call(subprocess.Popen, ["echo", "pwned"])}, protocol=4),
             "subprocess.Popen", "__reduce__ to subprocess.Popen, protocol 4")
    pkl_case("global_exec_protocol4.pt",
             torch_pickle(Call(exec, "print('pwned')"), protocol=4), "builtins.exec",
             "STACK_GLOBAL builtins.exec (protocol 4)")
    pkl_case("global_getattr.pt", torch_pickle(Call(getattr, [], "append")), "builtins.getattr",
             "builtins.getattr")
    pkl_case("global_inst_opcode.pt", b"\x80\x02(X\x02\x00\x00\x00lsios\nsystem\n.",
             "os.system", "INST os.system")
    # A whole nn.Module reads (its classes are inert records, never called).
    control("control_whole_module_zip.pt", saved(nn.Linear(2, 2)), "torch.save(nn.Linear), zip")
    control("control_whole_module_legacy.pt",
            saved(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)),
                  _use_new_zipfile_serialization=False), "torch.save(nn.Sequential), legacy")

    # Tensors that do not fit their storage.
    add("tensor_storage_too_short.pt", fake_tensor_zip(0, (4, 4), (4, 1), 4, 16), "needs 64",
        "4-element storage, shape [4, 4]")
    add("tensor_offset_beyond_storage.pt", fake_tensor_zip(10, (2,), (1,), 4, 16), "needs 48",
        "storage offset 10 in a 4-element storage")
    add("tensor_stride_beyond_storage.pt", fake_tensor_zip(0, (2, 2), (1000, 1), 16, 64), "needs 4008",
        "stride 1000 in a 16-element storage")
    add("tensor_shape_overflow.pt",
        fake_tensor_zip(0, (2**40, 2**40), (2**40, 1), 16, 64), "more elements than int64",
        "shape [2^40, 2^40]: numel overflows int64")
    add("tensor_stride_overflow.pt", fake_tensor_zip(0, (2, 2), (2**62, 1), 16, 64), "overflows int64",
        "stride 2^62: extent overflows int64")
    add("tensor_negative_dim.pt", fake_tensor_zip(0, (-1, 4), (4, 1), 16, 64), "negative dimension",
        "shape [-1, 4]")
    add("tensor_negative_offset.pt", fake_tensor_zip(-4, (2,), (1,), 16, 64), "storage_offset -4",
        "storage offset -4")
    add("tensor_negative_stride.pt", fake_tensor_zip(4, (2,), (-1,), 16, 64), "negative stride",
        "stride -1")
    add("tensor_record_shorter_than_numel.pt", fake_tensor_zip(0, (4,), (1,), 1000, 16), "holds 16 bytes",
        "persistent id numel 1000, record of 16 bytes")
    add("tensor_huge_numel.pt", fake_tensor_zip(0, (4,), (1,), 2**62, 16), "element count",
        "persistent id numel 2^62 (bytes overflow)")
    add("tensor_size_not_tuple.pt",
        torch_zip(torch_pickle({"w": FakeTensor(StorageRef("0", numel=4), 0, "abcd", (1,))}),
                  {"0": b"\0" * 16}), "size must be a tuple", "size is a string")

    class FooStorage:
        pass
    FooStorage.__module__, FooStorage.__qualname__ = "torch", "FooStorage"
    torch.FooStorage = FooStorage
    try:
        add("tensor_unknown_storage_type.pt",
            fake_tensor_zip(0, (4,), (1,), 4, 16, storage_type=FooStorage), "torch.FooStorage",
            "persistent id with storage class torch.FooStorage")
    finally:
        del torch.FooStorage
    add("tensor_persistent_id_short.pt",
        torch_zip(torch_pickle({"w": FakeTensor(StorageRef("0", numel=4), 0, (4,), (1,))},
                               persistent=lambda s: ("storage", s.storage_type)),
                  {"0": b"\0" * 16}), "persistent id", "persistent id tuple of 2 items")
    add("tensor_persistent_id_int.pt", torch_zip(b"\x80\x02K\x07Q."), "persistent id",
        "BINPERSID of an int")

    # Legacy format.
    ends = pickle_ends(legacy_ok)
    m = len(legacy_ok)
    add("legacy_truncated_4.pt", legacy_ok[:4], "truncated", "legacy cut inside the magic pickle")
    add("legacy_truncated_after_magic.pt", legacy_ok[:ends[0]], "truncated",
        "legacy cut after the magic pickle")
    add("legacy_truncated_in_pickle.pt", legacy_ok[:(ends[2] + ends[3]) // 2], "truncated",
        "legacy cut inside the object pickle")
    add("legacy_truncated_in_data.pt", legacy_ok[:(ends[4] + m) // 2], "truncated",
        "legacy cut inside the raw storages")
    add("legacy_truncated_last_byte.pt", legacy_ok[:m - 1], "truncated",
        "legacy missing its last byte")
    magic_b = LEGACY_MAGIC.to_bytes(10, "little")
    add("legacy_bad_magic.pt", legacy_ok.replace(magic_b, magic_b[::-1], 1), "magic number",
        "legacy magic number changed")
    add("legacy_bad_protocol_version.pt",
        legacy_ok[:ends[0]] + legacy_ok[ends[0]:ends[1]].replace(b"M\xe9\x03", b"M\xea\x03")
        + legacy_ok[ends[1]:], "1002", "legacy protocol version 1002")
    add("legacy_storage_numel_huge.pt", patch(legacy_ok, ends[4], "<q", 2**60), "truncated",
        "raw storage header claims 2^60 elements")
    # One storage only: with two, what follows a short one depends on the
    # order of the storage keys (addresses), so the message would vary.
    torch.manual_seed(0)
    legacy_one = saved({"w": torch.randn(16)}, _use_new_zipfile_serialization=False)
    add("legacy_storage_numel_short.pt", patch(legacy_one, pickle_ends(legacy_one)[4], "<q", 2),
        "needs 64", "raw storage header claims 2 elements, the pickle 16")

    # safetensors.
    k = len(st_ok)
    (hlen,) = struct.unpack_from("<Q", st_ok)
    add("st_truncated_4.safetensors", st_ok[:4], "8-byte header", "cut inside the header size")
    add("st_truncated_header.safetensors", st_ok[:8 + hlen // 2], "past the end", "cut inside the header")
    add("st_truncated_data.safetensors", st_ok[:k - 3], "past the end", "cut inside the data")
    add("st_header_beyond_file.safetensors", patch(st_ok, 0, "<Q", 1000000), "past the end of the file",
        "header size 1e6 in a small file")
    add("st_header_2_63.safetensors", patch(st_ok, 0, "<Q", 2**63), "exceeds the limit",
        "header size 2^63")
    add("st_header_zero.safetensors", patch(st_ok, 0, "<Q", 0), "not a JSON object", "header size 0")
    # A real 150 MB file (sparse on disk) so only the 100 MB limit is wrong.
    big = patch(st_ok, 0, "<Q", 150 * 1024 * 1024)
    write("st_header_over_100mb.safetensors", big)
    with open(os.path.join(outdir, "st_header_over_100mb.safetensors"), "r+b") as f:
        f.truncate(8 + 150 * 1024 * 1024 + 64)
    add("st_header_over_100mb.safetensors", None, "limit of 100000000", "150 MB header")
    body32 = b"\0" * 32
    ok_pair = st_header(("a", "F32", [4], 0, 16), ("b", "F32", [4], 16, 32))
    control("control_st_raw.safetensors", safetensors_raw(ok_pair, body32),
            "hand-written safetensors")
    add("st_bad_json.safetensors", safetensors_raw(b'{"a": {"dtype": "F32", ', body32), "not valid JSON",
        "header JSON cut short")
    add("st_json_array.safetensors", safetensors_raw(b"[1, 2, 3]", body32), "not a JSON object",
        "header is a JSON array")
    add("st_overlap.safetensors",
        safetensors_raw(st_header(("a", "F32", [4], 0, 16), ("b", "F32", [4], 8, 24)),
                        b"\0" * 24), "overlaps", "a [0,16] and b [8,24]")
    add("st_out_of_range.safetensors",
        safetensors_raw(st_header(("a", "F32", [4], 0, 16), ("b", "F32", [246], 16, 1000)),
                        body32), "past the end", "b ends at 1000 in a 32-byte data section")
    add("st_hole.safetensors",
        safetensors_raw(st_header(("a", "F32", [4], 0, 16), ("b", "F32", [4], 32, 48)),
                        b"\0" * 48), "hole", "16-byte hole between a and b")
    add("st_hole_at_start.safetensors",
        safetensors_raw(st_header(("a", "F32", [4], 8, 24)), b"\0" * 24), "hole",
        "data starts 8 bytes into the data section")
    add("st_trailing_bytes.safetensors", safetensors_raw(ok_pair, body32 + b"\0" * 8), "cover 32 bytes",
        "8 bytes after the last tensor")
    add("st_size_mismatch.safetensors",
        safetensors_raw(st_header(("a", "F32", [4], 0, 8)), b"\0" * 8), "needs 16",
        "shape [4] F32 in 8 bytes")
    add("st_unknown_dtype.safetensors",
        safetensors_raw(st_header(("a", "X99", [4], 0, 16)), b"\0" * 16), "X99",
        "dtype X99")
    add("st_duplicate_name.safetensors",
        safetensors_raw(b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
                        b'"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}', body32),
        "duplicate key", "tensor a twice")
    add("st_begin_after_end.safetensors",
        safetensors_raw(st_header(("a", "F32", [4], 16, 0)), b"\0" * 16), "begin after end",
        "offsets [16, 0]")
    add("st_negative_dim.safetensors",
        safetensors_raw(st_header(("a", "F32", [-4], 0, 16)), b"\0" * 16), "-4",
        "shape [-4]")
    add("st_shape_overflow.safetensors",
        safetensors_raw(st_header(("a", "F32", [2**62, 2**62], 0, 16)), b"\0" * 16), "int64",
        "shape [2^62, 2^62]")
    add("st_missing_offsets.safetensors",
        safetensors_raw(b'{"a":{"dtype":"F32","shape":[4]}}', b"\0" * 16), "data_offsets",
        "entry without data_offsets")
    add("st_metadata_not_string.safetensors",
        safetensors_raw(b'{"__metadata__":{"epoch":3},'
                        b'"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', b"\0" * 16),
        "__metadata__", "__metadata__ value is a number")
    add("st_entry_not_object.safetensors", safetensors_raw(b'{"a": 5}', b""), "not a JSON object",
        "tensor entry is a number")
    add("st_not_utf8.safetensors",
        safetensors_raw(b'{"\xff\xfe":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}',
                        b"\0" * 16), "UTF-8", "header is not UTF-8")

    # Sharded safetensors.
    shard = safetensors_io.encode(collections.OrderedDict(a=torch.zeros(4)))
    write("shard-1.safetensors", shard)
    control("control_sharded.safetensors.index.json",
            json.dumps({"weight_map": {"a": "shard-1.safetensors"}}).encode(),
            "sharded index")
    add("sharded_missing_shard.safetensors.index.json",
        json.dumps({"weight_map": {"a": "shard-1.safetensors",
                                   "b": "missing-shard.safetensors"}}).encode(),
        "missing-shard", "index names a shard that does not exist")
    add("sharded_bad_json.safetensors.index.json", b'{"weight_map": {"a": ', "not valid JSON",
        "index JSON cut short")
    add("sharded_tensor_not_in_shard.safetensors.index.json",
        json.dumps({"weight_map": {"a": "shard-1.safetensors",
                                   "zzz": "shard-1.safetensors"}}).encode(),
        "zzz", "index maps zzz to a shard without it")
    add("sharded_no_weight_map.safetensors.index.json",
        json.dumps({"metadata": {"total_size": 16}}).encode(), "weight_map",
        "index without weight_map")

    # Pickles that try to run code, memo/length/zip bombs, polyglots. Their
    # payloads `touch` the canary, which must never exist.
    import hostile_corpus  # noqa: E402 (imports this module)
    canary = os.path.join(outdir, "CANARY-a-pickle-ran")
    hostile_corpus.add_hostile(add, control, canary)

    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump({"bad": bad, "good": good, "canary": canary}, f, indent=1)
    return bad, good


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: make_bad_corpus.py OUTDIR\n")
        return 2
    bad, good = build(argv[1])
    print("wrote %d bad files and %d controls to %s" % (len(bad), len(good), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
