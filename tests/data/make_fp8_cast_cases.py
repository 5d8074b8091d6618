"""Writes what torch's Tensor.to(dtype) does with the torch 2.x dtypes, as
test vectors for the server's cast (tests/server/dtype_cast_torch2_test.cc).

    python3 make_fp8_cast_cases.py OUT

OUT/cases.json lists {"name", "from", "to", "input", "expected"}: raw
little-endian element files in OUT. Inputs: all 256 bit patterns of each
float8 type; float32 edge values (every float8 value, its neighbours, the
midpoints between float8 values and one ulp either side, max, past max, inf,
NaN, -0, subnormals) and random bit patterns; every bfloat16 and float16 bit
pattern; float64 values that round twice; integers into and out of
uint16/32/64. With a torch that lacks these dtypes, cases.json is
{"unsupported": REASON} and the C++ test skips, saying why.
"""
import json
import os
import sys

import numpy as np
import torch

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
FP8 = [n for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
       if hasattr(torch, n)]
UINT = [n for n in ("uint16", "uint32", "uint64") if hasattr(torch, n)]


def name_of(dtype):
    return str(dtype).replace("torch.", "")


def raw(t):
    return t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()


cases = []


def add(name, x, to):
    try:
        y = x.to(to)
    except (RuntimeError, TypeError) as e:  # a conversion this torch lacks
        print(f"skipping {name}: {e}", file=sys.stderr)
        return
    base = name.replace(" ", "_")
    with open(os.path.join(OUT, base + ".in"), "wb") as f:
        f.write(raw(x))
    with open(os.path.join(OUT, base + ".out"), "wb") as f:
        f.write(raw(y))
    cases.append({"name": name, "from": name_of(x.dtype), "to": name_of(to),
                  "input": base + ".in", "expected": base + ".out"})


def float32_edges(fp8):
    all256 = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(fp8).float()
    finite = all256[torch.isfinite(all256)].double().unique().sort().values
    mids = (finite[1:] + finite[:-1]) / 2
    vals = torch.cat([finite, mids]).float()
    f32 = torch.finfo(torch.float32)
    special = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), -float("nan"),
                            f32.max, -f32.max, f32.tiny, f32.tiny / 2, 1e-45, -1e-45, 1e-10,
                            3e38, 65504.0, 57344.0, 61440.0, 65536.0, 448.0, 464.0, 465.0,
                            479.9, 480.0, 240.0, 248.0, 256.0, 1e6], dtype=torch.float32)
    up = torch.nextafter(vals, torch.full_like(vals, float("inf")))
    down = torch.nextafter(vals, torch.full_like(vals, float("-inf")))
    gen = torch.Generator().manual_seed(13)
    rnd = torch.randint(0, 2**32, (20000,), generator=gen, dtype=torch.int64)
    rnd = rnd.numpy().astype(np.uint32).view(np.float32)
    return torch.cat([vals, -vals, up, -up, down, -down, special, torch.from_numpy(rnd.copy())])


def main():
    if not FP8 or not UINT:
        missing = [n for n in ("float8_e4m3fn", "uint16") if not hasattr(torch, n)]
        with open(os.path.join(OUT, "cases.json"), "w") as f:
            json.dump({"unsupported": f"torch {torch.__version__} has no "
                                      f"{', '.join(missing)} (float8 needs torch >= 2.1, "
                                      f"uint16/32/64 >= 2.3)"}, f)
        return
    every16 = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    for n in FP8:
        fp8 = getattr(torch, n)
        all256 = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(fp8)
        for to in (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.bool):
            add(f"{n} all256 to {name_of(to)}", all256, to)
        for other in FP8:
            if other != n:
                add(f"{n} all256 to {other}", all256, getattr(torch, other))
        add(f"float32 edges to {n}", float32_edges(fp8), fp8)
        add(f"bfloat16 all65536 to {n}", every16.view(torch.bfloat16), fp8)
        add(f"float16 all65536 to {n}", every16.view(torch.float16), fp8)
        # float64 -> float8 rounds to float32 first, as c10::Float8_*(float).
        f64 = float32_edges(fp8).double()
        add(f"float64 edges to {n}", torch.cat([f64, f64 * (1 + 2.0**-30)]), fp8)
    ints = torch.tensor([0, 1, 255, 256, 65535, 65536, 2**31 - 1, 2**32 - 1, 2**32, 2**53 + 1,
                         2**63 - 1, -1, -2, -65536, -2**63], dtype=torch.int64)
    for n in UINT:
        u = getattr(torch, n)
        add(f"int64 to {n}", ints, u)
        wrapped = ints.to(u)
        for to in (torch.int64, torch.float32, torch.float64, torch.bool):
            add(f"{n} to {name_of(to)}", wrapped, to)
        fl = torch.tensor([0.0, 0.5, 1.0, 1.9, 255.0, 65535.0, 65535.5], dtype=torch.float32)
        add(f"float32 to {n}", fl, u)
    add("uint64 to float32", torch.tensor([-1, -2**63, -2**63 + 2**40, 2**53 + 1, 1],
                                          dtype=torch.int64).to(torch.uint64), torch.float32)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)


main()
