"""Files written by the safetensors library itself, and a check that it reads
ours: the torch 2.x dtypes through safetensors' own code (not our spec-based
safetensors_io.py).

  safetensors_library_cases.py write OUTDIR
      OUTDIR/library.safetensors       safetensors.torch.save_file: float8,
                                       ordinary dtypes, __metadata__
      OUTDIR/library_uint.safetensors  safetensors.numpy.save_file: U16/U32/U64
                                       (safetensors.torch 0.4 has no uint16)
      OUTDIR/library.json              per tensor: dtype, shape, xxh64 of the
                                       bytes; the metadata; or {"unsupported":
                                       REASON} without torch >= 2.3/safetensors
  safetensors_library_cases.py check FILE
      FILE holds what both files hold; safe_open (framework pt, and np for the
      unsigned ones) and, where it maps every dtype, safetensors.torch.load_file
      must give the same bits and the metadata.
"""
import json
import os
import sys

import numpy as np
import torch
import xxhash

METADATA = {"format": "pt", "note": "written by safetensors"}
FP8 = ("float8_e4m3fn", "float8_e5m2")


def unsupported():
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return "python3-safetensors is not installed"
    missing = [n for n in FP8 + ("uint16",) if not hasattr(torch, n)]
    if missing:
        return f"torch {torch.__version__} has no {', '.join(missing)}"
    return None


def torch_tensors():
    all256 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    t = {n: all256.clone().view(getattr(torch, n)).reshape(16, 16) for n in FP8}
    t["float8_e4m3fn_row"] = t["float8_e4m3fn"][3].clone()
    t["bfloat16"] = torch.linspace(-3, 3, 7).bfloat16()
    t["int64"] = torch.tensor([1, -2, 3])
    return t


def numpy_tensors():
    return {"uint16": np.array([0, 1, 65535, 40000], dtype=np.uint16),
            "uint32": np.array([[0, 2**32 - 1], [7, 2**31]], dtype=np.uint32),
            "uint64": np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)}


def raw(x):
    if isinstance(x, torch.Tensor):
        return x.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
    return np.ascontiguousarray(x).tobytes()


def describe(name, x):
    dtype = str(x.dtype).replace("torch.", "")
    return {"name": name, "dtype": dtype, "shape": list(x.shape),
            "xxh64": str(xxhash.xxh64(raw(x)).intdigest())}


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    reason = unsupported()
    if reason:
        with open(os.path.join(outdir, "library.json"), "w") as f:
            json.dump({"unsupported": reason}, f)
        return
    import safetensors
    import safetensors.numpy
    import safetensors.torch
    tt, nt = torch_tensors(), numpy_tensors()
    safetensors.torch.save_file(tt, os.path.join(outdir, "library.safetensors"), METADATA)
    safetensors.numpy.save_file(nt, os.path.join(outdir, "library_uint.safetensors"))
    with open(os.path.join(outdir, "library.json"), "w") as f:
        json.dump({"safetensors": safetensors.__version__, "metadata": METADATA,
                   "tensors": [describe(k, v) for k, v in {**tt, **nt}.items()]}, f, indent=1)


def check(path):
    import safetensors.torch
    from safetensors import safe_open
    want = {k: raw(v) for k, v in {**torch_tensors(), **numpy_tensors()}.items()}
    uints = set(numpy_tensors())
    problems = []
    with safe_open(path, framework="np") as f:
        names = set(f.keys())
        if f.metadata() != METADATA:
            problems.append(f"metadata {f.metadata()} != {METADATA}")
        for k in names & uints:
            if raw(f.get_tensor(k)) != want[k]:
                problems.append(f"safe_open(np) {k}: bytes differ")
    if names != set(want):
        problems.append(f"names {sorted(names)} != {sorted(want)}")
    with safe_open(path, framework="pt") as f:
        for k in names - uints:
            t = f.get_tensor(k)
            if raw(t) != want[k] or not k.startswith(str(t.dtype).replace("torch.", "")):
                problems.append(f"safe_open(pt) {k}: {t.dtype} / bytes differ")
    # safetensors.torch 0.4 maps no U16/U32/U64; where it does, load_file too.
    if all(c in safetensors.torch._TYPES for c in ("U16", "U32", "U64")):
        for k, t in safetensors.torch.load_file(path).items():
            if raw(t) != want[k]:
                problems.append(f"load_file {k}: bytes differ")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
