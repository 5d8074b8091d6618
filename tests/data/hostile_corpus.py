"""Hostile files for the bad-input corpus (issue 7): pickles that try to run
code, memo and length bombs, zip bombs and safetensors polyglots.

make_bad_corpus.build() calls add_hostile(). Payloads that would run a
command run `touch CANARY`, so bad_corpus_test.py can check after every file
that nothing executed: the canary must never exist.
"""

import collections
import os
import struct
import subprocess
import zlib

import torch

import make_bad_corpus as m  # building blocks: torch_zip, torch_pickle, Call, ...
import safetensors_io


def _memo_fanout(leaf, levels):
    """Protocol-2 pickle of {"state_dict": {}, "meta": L} where L0 = (leaf,)
    and L(i+1) = (Li, Li) by LONG_BINGET: a few bytes per level, 2^levels
    references to `leaf` once expanded."""
    put = lambda i: b"r" + struct.pack("<I", i)
    get = lambda i: b"j" + struct.pack("<I", i)
    p = b"\x80\x02}(X\x0a\x00\x00\x00state_dict}X\x04\x00\x00\x00meta"
    p += leaf + b"\x85" + put(1) + b"0"
    for i in range(levels):
        p += get(1 + i) + get(1 + i) + b"\x86" + put(2 + i) + b"0"
    return p + get(1 + levels) + b"u."


def _deep_key_chain(key_len, depth):
    """{"state_dict": {}, "meta": {K: {K: ... {}}}} with one shared key K."""
    put = lambda i: b"r" + struct.pack("<I", i)
    get = lambda i: b"j" + struct.pack("<I", i)
    p = b"\x80\x02X" + struct.pack("<I", key_len) + b"k" * key_len + put(0) + b"0}" + put(1) + b"0"
    for _ in range(depth):
        p += b"}" + get(0) + get(1) + b"s" + put(1) + b"0"
    return p + b"}(X\x0a\x00\x00\x00state_dict}X\x04\x00\x00\x00meta" + get(1) + b"u."


def _deflate_zeros(n):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(64 << 20)
    out, crc, left = [], 0, n
    while left > 0:
        piece = chunk if left >= len(chunk) else chunk[:left]
        out.append(c.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    out.append(c.flush())
    return b"".join(out), crc


def _zip_raw(records):
    """A zip of (name, stored_bytes, method, crc, size, local_offset or None)
    records: central entries may point anywhere (overlapping entries)."""
    out, central = bytearray(), bytearray()
    offsets = {}
    for name, stored, method, crc, size, at in records:
        nb = name.encode()
        if at is None:
            at = len(out)
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(stored),
                               size, len(nb), 0) + nb + stored
        offsets[name] = at
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                               len(stored), size, len(nb), 0, 0, 0, 0, 0, at) + nb
    cd = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(records), len(records), len(central),
                       cd, 0)
    return bytes(out)


def add_hostile(add, control, canary):
    """Adds the hostile cases through make_bad_corpus.build's add()/control()."""
    touch = "touch " + canary

    def pkl_case(name, pkl, expect, what):
        add(name, m.torch_zip(pkl), expect, what)

    # --- pickles that try to run something; none may create the canary ---
    pkl_case("exec_os_system_touch.pt", m.torch_pickle({"x": m.Call(os.system, touch)}),
             "posix.system", "os.system('touch canary') by __reduce__ (protocol 2)")
    pkl_case("exec_posix_system_protocol4.pt",
             m.torch_pickle({"x": m.Call(os.system, touch)}, protocol=4), "posix.system",
             "os.system by STACK_GLOBAL (protocol 4)")
    pkl_case("exec_subprocess_check_call.pt",
             m.torch_pickle(m.Call(subprocess.check_call, ["touch", canary]), protocol=4),
             "subprocess.check_call", "subprocess.check_call(['touch', canary])")
    pkl_case("exec_eval_touch.pt",
             m.torch_pickle(m.Call(eval, "__import__('os').system(%r)" % touch), protocol=4),
             "builtins.eval", "builtins.eval of os.system")
    pkl_case("exec_exec_protocol2.pt",
             m.torch_pickle(m.Call(exec, "import os; os.system(%r)" % touch)),
             "builtins.exec", "exec pickled as __builtin__.exec (protocol 2)")
    pkl_case("exec_import_os.pt", m.torch_pickle(m.Call(__import__, "os"), protocol=4),
             "builtins.__import__", "builtins.__import__('os')")
    # getattr(__import__('os'), 'system')(cmd), REDUCE of REDUCE results.
    pkl_case("exec_getattr_chain.pt",
             b"\x80\x02c__builtin__\ngetattr\n(c__builtin__\n__import__\n(X\x02\x00\x00\x00ostR"
             b"X\x06\x00\x00\x00systemtR(X" + struct.pack("<I", len(touch)) + touch.encode() +
             b"tR.", "builtins.getattr", "getattr(__import__('os'), 'system')(cmd)")
    # Whole-model files (torch.save(model)): classes are inert records, but
    # a call inside one is refused as in any other file.
    payload_module = torch.nn.Linear(2, 2)
    payload_module.payload = m.Call(os.system, touch)
    add("whole_model_system_attribute.pt", m.saved(payload_module), "posix.system",
        "torch.save(module) with an os.system(cmd) attribute, zip")
    add("whole_model_system_attribute_legacy.pt",
        m.saved(payload_module, _use_new_zipfile_serialization=False), "posix.system",
        "torch.save(module) with an os.system(cmd) attribute, legacy")
    pkl_case("whole_model_build_int_state.pt", b"\x80\x02c__main__\nX\n)\x81K\x01b.",
             "with a int state", "BUILD of a stub object with an int (calls __setstate__)")
    pkl_case("whole_model_setitems_on_object.pt",
             b"\x80\x02c__main__\nX\n)\x81(K\x01X\x02\x00\x00\x00rmu.",
             "SETITEMS on a __main__.X object", "SETITEMS on a stub (calls __setitem__)")
    pkl_case("whole_model_newobj_ex.pt",
             b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02ls\x85}\x92.",
             "os.system", "NEWOBJ_EX of os.system")
    # A module-shaped state whose parameter is not a tensor.
    pkl_case("whole_model_parameter_not_tensor.pt",
             b"\x80\x02c__main__\nX\n)\x81}(X\x0b\x00\x00\x00_parameters}X\x01\x00\x00\x00"
             b"wK\x01sX\x08\x00\x00\x00_buffers}X\x08\x00\x00\x00_modules}ub.",
             'parameter "w" of a __main__.X is a int', "a module whose parameter is an int")

    # __reduce__ chains: allowlisted callables fed hostile arguments. The
    # inner global is refused as soon as the pickle names it.
    pkl_case("chain_ordereddict_of_system.pt",
             m.torch_pickle(m.Call(collections.OrderedDict, m.Call(os.system, touch))),
             "posix.system", "OrderedDict(os.system(cmd))")
    pkl_case("chain_rebuild_tensor_of_eval.pt",
             m.torch_pickle({"w": m.Call(torch._utils._rebuild_tensor_v2,
                                         m.Call(eval, "0"), 0, (1,), (1,), False,
                                         collections.OrderedDict())}),
             "builtins.eval", "_rebuild_tensor_v2 whose storage is eval(...)")
    pkl_case("chain_rebuild_parameter_of_system.pt",
             m.torch_pickle({"w": m.Call(torch._utils._rebuild_parameter,
                                         m.Call(os.system, touch), False,
                                         collections.OrderedDict())}),
             "posix.system", "_rebuild_parameter(os.system(cmd), ...)")
    pkl_case("chain_rebuild_from_type_ordereddict.pt",
             m.torch_pickle(m.Call(torch._tensor._rebuild_from_type_v2, collections.OrderedDict,
                                   torch.Tensor, (), {})),
             "_rebuild_from_type_v2 with function", "_rebuild_from_type_v2(OrderedDict, ...)")
    pkl_case("chain_ordereddict_of_string.pt",
             m.torch_pickle(m.Call(collections.OrderedDict, "rm -rf /")),
             "needs a list, tuple or set", "OrderedDict('rm -rf /')")
    pkl_case("chain_torch_size_of_string.pt",
             m.torch_pickle({"s": m.Call(torch.Size, "rm -rf /")}),
             "must be a tuple of ints", "torch.Size('rm -rf /')")
    pkl_case("chain_codecs_base64.pt",
             m.torch_pickle({"b": m.Call(__import__("_codecs").encode, "eA==", "base64")}),
             "encoding 'base64' is not supported", "_codecs.encode(..., 'base64')")
    pkl_case("chain_reduce_calls_string.pt", b"\x80\x02X\x02\x00\x00\x00lsN\x85R.",
             "REDUCE calls a str", "REDUCE whose callable is a string")
    pkl_case("chain_newobj_ex_kwargs.pt",
             b"\x80\x04\x8c\x0bcollections\x8c\x0bOrderedDict\x93)}\x8c\x01k\x8c\x01vs\x92.",
             "keyword arguments", "NEWOBJ_EX OrderedDict(k='v')")
    pkl_case("chain_build_list_state.pt",
             b"\x80\x02ccollections\nOrderedDict\n)R]b.", "BUILD on a dict with a list state",
             "BUILD (__setstate__) of an OrderedDict with a list")
    pkl_case("chain_ext1.pt", b"\x80\x02\x82\x01.", "extension codes", "EXT1 copyreg lookup")

    # torch.load recursion: a pickle that would load another checkpoint.
    pkl_case("recursion_torch_load.pt", m.torch_pickle({"x": m.Call(torch.load, "other.pt")}),
             "torch.serialization.load", "torch.load('other.pt') by __reduce__")
    pkl_case("recursion_torch_load_protocol4.pt",
             m.torch_pickle(m.Call(torch.serialization._load, None, "cpu", None), protocol=4),
             "torch.serialization._load", "torch.serialization._load")
    pkl_case("recursion_load_from_bytes.pt",
             m.torch_pickle({"s": m.Call(torch.storage._load_from_bytes,
                                         m.saved({"x": m.Call(os.system, touch)}))}),
             "torch.storage._load_from_bytes",
             "torch.storage._load_from_bytes of a nested hostile torch.save")
    pkl_case("recursion_jit_load.pt", m.torch_pickle(m.Call(torch.jit.load, "other.pt"), protocol=4),
             "torch.jit", "torch.jit.load('other.pt')")

    # --- memo and DUP bombs ---
    pkl_case("memo_string_fanout.pt",
             _memo_fanout(b"X" + struct.pack("<I", 1 << 20) + b"a" * (1 << 20), 12),
             "bytes of strings and key paths", "a 1 MiB string referenced 4096 times (1 MB file)")
    pkl_case("memo_tuple_fanout.pt", _memo_fanout(b"N", 64), "4194304 nodes",
             "(t, t) by LONG_BINGET 64 times: 2^64 nodes")
    pkl_case("memo_dup_fanout.pt", b"\x80\x02N" + b"2\x86" * 64 + b".", "4194304 nodes",
             "(t, t) by DUP 64 times")
    pkl_case("memo_deep_long_key.pt", _deep_key_chain(200000, 500),
             "bytes of strings and key paths", "500 dicts nested under one 200 kB key")
    pkl_case("memo_huge_index.pt", b"\x80\x02}r\xff\xff\xff\xffj\xfe\xff\xff\xff.",
             "memo has no entry 4294967294", "LONG_BINPUT 2^32-1, LONG_BINGET 2^32-2")
    pkl_case("memo_put_index_overflow.pt", b"\x80\x02}p99999999999999999999999\n.",
             "bad PUT index", "PUT index beyond uint64")
    pkl_case("memo_too_many_entries.pt", b"\x80\x04N" + b"\x94" * ((1 << 22) + 1) + b".",
             "memo exceeds the limit", "4M+1 MEMOIZE")
    pkl_case("stack_dup_bomb.pt", b"\x80\x02N" + b"2" * (1 << 20) + b".",
             "stack exceeds the limit", "1M DUPs")

    # --- huge declared lengths, each checked before any allocation ---
    pkl_case("length_binunicode8.pt", b"\x80\x04\x8d" + struct.pack("<Q", 2**63) + b"x.",
             "BINUNICODE8 length", "BINUNICODE8 claims 2^63 bytes")
    pkl_case("length_binbytes.pt", b"\x80\x03B\xff\xff\xff\xffx.", "BINBYTES length",
             "BINBYTES claims 4 GiB")
    pkl_case("length_binstring.pt", b"\x80\x02T\xff\xff\xff\x7fx.", "BINSTRING length",
             "BINSTRING claims 2 GiB")
    pkl_case("length_under_limit_past_end.pt", b"\x80\x02X\x00\xca\x9a\x3bx.",
             "needs 1000000000 bytes", "BINUNICODE claims 1e9 bytes (under the limit), has 2")
    pkl_case("length_bytearray8.pt", b"\x80\x05\x96" + struct.pack("<Q", 2**62) + b".",
             "protocol 5 opcode 0x96", "BYTEARRAY8 claims 2^62 bytes")
    pkl_case("length_int_digits.pt", b"\x80\x02I" + b"9" * 100000 + b"\n.", "bad integer text",
             "INT with 100k digits")
    pkl_case("deep_tuples.pt", b"\x80\x02N" + b"\x85" * 100000 + b".", "nesting",
             "100k nested TUPLE1")
    pkl_case("deep_frozensets.pt", b"\x80\x04" + b"(" * 100000 + b"\x91" * 100000 + b".",
             "nesting", "100k nested frozensets by MARK/FROZENSET")

    # --- zip bombs ---
    numel = (1536 << 20) // 4
    bomb, crc = _deflate_zeros(numel * 4)
    pkl = m.torch_pickle(collections.OrderedDict(
        w=m.FakeTensor(m.StorageRef("0", numel=numel), 0, (numel,), (1,))))
    add("zipbomb_storage_1_5gib.pt",
        _zip_raw([("archive/data.pkl", pkl, 0, zlib.crc32(pkl), len(pkl), None),
                  ("archive/data/0", bomb, 8, crc, numel * 4, None),
                  ("archive/version", b"3\n", 0, zlib.crc32(b"3\n"), 2, None)]),
        "cannot allocate", "1.5 MB file whose storage honestly inflates to 1.5 GiB")
    small, small_crc = _deflate_zeros(1 << 20)
    add("zipbomb_stream_longer_than_declared.pt",
        _zip_raw([("archive/data.pkl", small, 8, small_crc, 100, None),
                  ("archive/version", b"3\n", 0, zlib.crc32(b"3\n"), 2, None)]),
        "more than its declared 100 bytes", "data.pkl declares 100 bytes, stream holds 1 MiB")
    # Overlapping entries (the non-recursive zip bomb's trick, which makes
    # one deflated stream count once per entry): data/1 and data/2 point at
    # data/0's local header.
    pkl = m.torch_pickle(collections.OrderedDict(
        (f"w{i}", m.FakeTensor(m.StorageRef(str(i), numel=4), 0, (4,), (1,))) for i in range(3)))
    rec = b"\0" * 16
    first = 30 + len("archive/data.pkl") + len(pkl)
    add("zip_overlapping_entries.pt",
        _zip_raw([("archive/data.pkl", pkl, 0, zlib.crc32(pkl), len(pkl), None),
                  ("archive/data/0", rec, 0, zlib.crc32(rec), 16, None)] +
                 [(f"archive/data/{i}", rec, 0, zlib.crc32(rec), 16, first) for i in (1, 2)]),
        "overlap", "data/1 and data/2 share data/0's local header")
    many = [("archive/x%06d" % i, b"", 0, 0, 0, None) for i in range(65000)]
    add("zip_many_entries.pt", _zip_raw(many), "data.pkl",
        "65000 empty entries and no data.pkl")

    # --- safetensors polyglots and header abuse ---
    # Readers sniff the content ("PK" first), not the extension: a hostile
    # torch zip named .safetensors still goes through the restricted
    # unpickler.
    add("polyglot_zip_as.safetensors", m.torch_zip(m.torch_pickle({"x": m.Call(os.system, touch)})),
        "posix.system", "a hostile torch zip named .safetensors")
    # A safetensors file whose only tensor's bytes are a torch zip with a
    # hostile pickle. It is read as safetensors only, whatever its name: a
    # control that must read fine and never run the pickle.
    evil_zip = m.torch_zip(m.torch_pickle({"x": m.Call(os.system, touch)}))
    header = {"blob": {"dtype": "U8", "shape": [len(evil_zip)],
                       "data_offsets": [0, len(evil_zip)]}}
    poly = m.safetensors_raw(header, evil_zip)
    control("control_polyglot_zip_payload.safetensors", poly,
            "safetensors whose one U8 tensor is a hostile torch zip")
    control("control_polyglot_zip_payload.pt", poly, "the same polyglot named .pt")
    # The same zip appended after the tensors instead: bytes no tensor covers.
    st = safetensors_io.encode(collections.OrderedDict(w=torch.ones(2)))
    add("polyglot_zip_appended.safetensors", st + evil_zip, "cover 8 bytes",
        "a hostile torch zip appended to a valid safetensors file")
    body = b"\0" * 16
    add("st_duplicate_metadata.safetensors",
        m.safetensors_raw(b'{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"},'
                          b'"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', body),
        "duplicate key", "__metadata__ twice")
    add("st_duplicate_field.safetensors",
        m.safetensors_raw(b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16],'
                          b'"data_offsets":[0,16]}}', body),
        "duplicate key", "data_offsets twice in one entry")
    add("st_offsets_u64_max.safetensors",
        m.safetensors_raw(m.st_header(("w", "F32", [4], 2**64 - 32, 2**64 - 16)), body),
        "past the end", "data_offsets [2^64-32, 2^64-16]")
    add("st_offsets_float.safetensors",
        m.safetensors_raw(b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1.6e1]}}', body),
        "data_offsets", "a data offset written as a float")
    add("st_offsets_negative.safetensors",
        m.safetensors_raw(m.st_header(("w", "F32", [4], -16, 0)), body),
        "data_offsets", "negative data offsets")
    add("st_overlap_same_range.safetensors",
        m.safetensors_raw(m.st_header(("a", "F32", [4], 0, 16), ("b", "F32", [4], 0, 16)), body),
        "overlaps", "two tensors on the same 16 bytes")
    add("st_header_length_u64_max.safetensors", struct.pack("<Q", 2**64 - 1) + b"{}",
        "exceeds the limit", "header size 2^64-1")
    add("st_deep_json.safetensors",
        m.safetensors_raw(b'{"__metadata__":' + b"[" * 100000 + b"]" * 100000 + b"}", b""),
        "JSON", "100k nested JSON arrays in the header")
