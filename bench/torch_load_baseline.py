#!/usr/bin/python3
"""What users do today on one node: torch.load (mmap=True where the torch has
it, 2.1+) then load_state_dict into a warm module of the same shapes; the
page cache is warm. Prints RESULT lines like load_bench.

usage: torch_load_baseline.py FILE [ITERS]
"""
import resource
import sys
import time

import torch

path = sys.argv[1]
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 3
mmap = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 1)
kwargs = {"mmap": True, "weights_only": True} if mmap else {}
sd = torch.load(path, **kwargs)
module = torch.nn.Module()
for name, t in sd.items():
    module.register_parameter(name.replace(".", "_"), torch.nn.Parameter(torch.ones_like(t)))
remap = {name: name.replace(".", "_") for name in sd}
del sd
times, faults = [], []
for _ in range(iters):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    sd = torch.load(path, **kwargs)
    module.load_state_dict({remap[k]: v for k, v in sd.items()})
    del sd
    times.append(time.perf_counter() - t0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
tag = "torch_load_mmap" if mmap else "torch_load"
print(f"torch {torch.__version__}, mmap={mmap}")
print(f"RESULT {tag}_best_s {min(times):.6f}")
print(f"RESULT {tag}_mean_s {sum(times) / len(times):.6f}")
print(f"RESULT {tag}_faults {sum(faults) / len(faults):.1f}")
