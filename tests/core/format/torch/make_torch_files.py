"""Writes real torch.save files for torch_file_test into OUT (sys.argv[1]).

For each file NAME.pt it also writes NAME.json: dotted tensor path ->
dtype, shape, stride, storage_offset, requires_grad, is_parameter and the
xxh64 of the row-major bytes, which the C++ test compares with what it reads.
"""
import io
import json
import os
import pickle
import sys
import tarfile
import zipfile

import torch
import xxhash

OUT = sys.argv[1]
# torch >= 2.1 (float8), >= 2.2 (fnuz), >= 2.3 (uint16/32/64): saved with
# _rebuild_tensor_v3 over torch.storage.UntypedStorage.
TORCH2_DTYPES = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                 "uint16", "uint32", "uint64"]
DTYPES = [torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64, torch.complex128]


def checksum(t):
    return xxhash.xxh64(t.detach().contiguous().view(-1).view(torch.uint8).numpy()).intdigest()


def describe(obj, path, out):
    if isinstance(obj, torch.Tensor):
        out[path] = {"dtype": str(obj.dtype).replace("torch.", ""), "shape": list(obj.shape),
                     "stride": list(obj.stride()), "storage_offset": obj.storage_offset(),
                     "requires_grad": obj.requires_grad,
                     "is_parameter": isinstance(obj, torch.nn.Parameter),
                     "checksum": str(checksum(obj))}
    elif isinstance(obj, dict):
        for k, v in obj.items():
            describe(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            describe(v, f"{path}.{i}" if path else str(i), out)
    return out


def save(name, obj, **kwargs):
    torch.save(obj, os.path.join(OUT, name + ".pt"), **kwargs)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(describe(obj, "", {}), f)


def rewrite_zip(src, dst, change, compression=zipfile.ZIP_STORED):
    """Copies a zip record by record; change(name, data) returns the records
    to write instead, as a list of (name, data)."""
    with zipfile.ZipFile(os.path.join(OUT, src)) as zin, \
         zipfile.ZipFile(os.path.join(OUT, dst), "w", compression) as zout:
        for info in zin.infolist():
            for name, data in change(info.filename, zin.read(info.filename)):
                zout.writestr(name, data)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def main():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    sd = model.state_dict()
    save("sd_zip", sd)
    save("sd_legacy", sd, _use_new_zipfile_serialization=False)

    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    views = {"base": x, "row": x[1], "tail": x[1:], "t": x.t(), "flat": x.view(-1)[5:9],
             "other": torch.ones(2, 2)}
    save("views_zip", views)
    save("views_legacy", views, _use_new_zipfile_serialization=False)

    params = {"w": torch.nn.Parameter(torch.ones(2, 2)),
              "frozen": torch.nn.Parameter(torch.zeros(3), requires_grad=False)}
    save("params_zip", params)
    save("params_legacy", params, _use_new_zipfile_serialization=False)

    dtypes = {}
    for dt in DTYPES:
        name = str(dt).replace("torch.", "")
        if dt == torch.bool:
            dtypes[name] = torch.tensor([[True, False, True], [False, False, True]])
        elif dt.is_complex:
            dtypes[name] = torch.complex(torch.randn(2, 3), torch.randn(2, 3)).to(dt)
        else:
            dtypes[name] = (torch.randn(2, 3) * 50).to(dt)
    dtypes["scalar"] = torch.tensor(2.5)
    dtypes["empty"] = torch.zeros(0, 3)
    save("dtypes_zip", dtypes)
    save("dtypes_legacy", dtypes, _use_new_zipfile_serialization=False)

    save_torch2_dtypes()

    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    full = {"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
            "epoch": 7, "loss": torch.tensor(0.25), "name": "run-1"}
    save("full_zip", full)
    save("full_proto4", full, pickle_protocol=4)
    save("full_legacy_proto4", full, pickle_protocol=4, _use_new_zipfile_serialization=False)

    # A big tensor, to check reading touches none of its pages.
    save("big_zip", {"big": torch.ones(1 << 20), "small": torch.zeros(3)})
    save("big_legacy", {"big": torch.ones(1 << 20), "small": torch.zeros(3)},
         _use_new_zipfile_serialization=False)

    save("single_zip", {"weight": torch.arange(16, dtype=torch.float32)})
    rewrite_zip("single_zip.pt", "short_record.pt",
                lambda n, d: [(n, d[:32] if n.endswith("/data/0") else d)])
    rewrite_zip("single_zip.pt", "missing_record.pt",
                lambda n, d: [] if n.endswith("/data/0") else [(n, d)])
    # torch >= 2.1 writes archive/byteorder; a big-endian writer says "big".
    # Replaced where this torch wrote one already, added where not (1.13).
    with zipfile.ZipFile(os.path.join(OUT, "single_zip.pt")) as z:
        has_byteorder = any(n.endswith("/byteorder") for n in z.namelist())

    def set_byteorder(order):
        def change(n, d):
            if n.endswith("/byteorder"):
                return [(n, order)]
            if n.endswith("/version") and not has_byteorder:
                return [(n, d), (n[:-len("version")] + "byteorder", order)]
            return [(n, d)]
        return change
    rewrite_zip("single_zip.pt", "big_endian.pt", set_byteorder(b"big"))
    rewrite_zip("single_zip.pt", "little_endian.pt", set_byteorder(b"little"))
    # Older torch named the archive folder after the file; any name works.
    # Deflated too, as a zip tool repacking the file would write it.
    rewrite_zip("single_zip.pt", "renamed_prefix.pt",
                lambda n, d: [("my_model/" + n.split("/", 1)[1], d)], zipfile.ZIP_DEFLATED)

    torch.save({"x": Evil()}, os.path.join(OUT, "evil_zip.pt"))
    torch.save({"x": Evil()}, os.path.join(OUT, "evil_legacy.pt"),
               _use_new_zipfile_serialization=False)

    # The pickle an attacker would write by hand: GLOBAL 'os system' + REDUCE.
    rewrite_zip("single_zip.pt", "os_system.pt",
                lambda n, d: [(n, b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R."
                               if n.endswith("/data.pkl") else d)])

    with tarfile.open(os.path.join(OUT, "ancient_tar.pt"), "w") as tar:
        data = b"not really storages"
        info = tarfile.TarInfo("storages")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with open(os.path.join(OUT, "plain_pickle.pt"), "wb") as f:
        pickle.dump({"a": 1}, f, protocol=2)


def save_torch2_dtypes():
    """torch2_dtypes_zip.pt, or torch2_dtypes.unsupported saying why not."""
    missing = [n for n in TORCH2_DTYPES if not hasattr(torch, n)]
    if missing:
        with open(os.path.join(OUT, "torch2_dtypes.unsupported"), "w") as f:
            f.write(f"torch {torch.__version__} has no {', '.join(missing)} "
                    "(float8 needs torch >= 2.1, uint16/32/64 >= 2.3)")
        return
    all256 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    t = {n: all256.clone().view(getattr(torch, n)).reshape(16, 16) for n in TORCH2_DTYPES[:4]}
    t["float8_e4m3fn_t"] = t["float8_e4m3fn"].t()      # same storage, transposed
    t["float8_e5m2_row"] = t["float8_e5m2"][5]         # same storage, offset 80
    t["uint16"] = torch.tensor([0, 1, 65535, 40000], dtype=torch.int32).to(torch.uint16)
    t["uint32"] = torch.tensor([[0, 2**32 - 1], [7, 2**31]], dtype=torch.int64).to(torch.uint32)
    t["uint64"] = torch.tensor([-1, -2**63, 5], dtype=torch.int64).to(torch.uint64)
    t["param_fp8"] = torch.nn.Parameter(t["float8_e5m2fnuz"][1:3].clone(), requires_grad=False)
    save("torch2_dtypes_zip", t)
    # torch 2.6 writes this but cannot load it (UntypedStorage has no .dtype
    # in its legacy loader); we read it.
    save("torch2_dtypes_legacy", t, _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
