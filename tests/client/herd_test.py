#!/usr/bin/python3
"""A herd of client processes started at once against a real, idle weightd
(issue 15): every one must succeed on its first call.

usage: herd_test.py HERD_CLIENT WEIGHTCTL WEIGHTD [CLIENTS] [PULLS]

CLIENTS LibTorch processes (herd_client: Client::Load into a module of its
own, default options) and PULLS `weightctl pull` processes (LibTorch-free)
start together. Their start-up (loading LibTorch, first connection) competes
for the same few cores, so connection handshakes are slow: the client must
wait for them instead of giving up (it used to cut each attempt off after
100 ms; gRPC reports that as "tcp handshaker shutdown").
"""
import os
import subprocess
import sys
import tempfile
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "data"))
from weightd_process import WeightdProcess  # noqa: E402

HERD_CLIENT, WEIGHTCTL, WEIGHTD = sys.argv[1:4]
CLIENTS = int(sys.argv[4]) if len(sys.argv) > 4 else 16
PULLS = int(sys.argv[5]) if len(sys.argv) > 5 else 8
TENSORS, NUMEL = 8, 256 * 1024  # 8 MiB per client


def main():
    with tempfile.TemporaryDirectory() as work:
        repo = os.path.join(work, "repo")
        os.makedirs(os.path.join(repo, "herd", "1"))
        torch.manual_seed(15)
        sd = {"layers.%d.weight" % i: torch.randn(NUMEL) for i in range(TENSORS)}
        torch.save(sd, os.path.join(repo, "herd", "1", "model.pt"))
        want = sum(float(t.double().sum()) for t in sd.values())
        daemon = WeightdProcess(WEIGHTD, repo)
        try:
            env = dict(os.environ, GRPC_VERBOSITY="ERROR")
            procs = []
            start = time.monotonic()
            for _ in range(CLIENTS):
                procs.append(("herd_client", None, subprocess.Popen(
                    [HERD_CLIENT, daemon.address, "herd", str(TENSORS), str(NUMEL)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)))
            for i in range(PULLS):
                out = os.path.join(work, "pull%d.pt" % i)
                procs.append(("weightctl pull", out, subprocess.Popen(
                    [WEIGHTCTL, "pull", "herd", "-o", out, "--server", daemon.address],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)))
            failures = []
            for what, out, p in procs:
                text, _ = p.communicate(timeout=120)
                if p.returncode != 0:
                    failures.append("%s exited %d: %s" % (what, p.returncode, text.strip()))
                elif out is None:
                    got = float(text.split()[-1])
                    if abs(got - want) > 1e-6 * max(1.0, abs(want)):
                        failures.append("%s loaded the wrong values: sum %r, want %r" %
                                        (what, got, want))
                else:
                    pulled = torch.load(out)
                    if pulled.keys() != sd.keys() or any(
                            not torch.equal(pulled[k], sd[k]) for k in sd):
                        failures.append("%s wrote other tensors than the model's" % what)
            seconds = time.monotonic() - start
        finally:
            code = daemon.stop()
        print("%d LibTorch clients + %d pulls started at once: %d failed, %.1f s" %
              (CLIENTS, PULLS, len(failures), seconds))
        for f in failures:
            print("  " + f)
        if code != 0:
            print("weightd exited %d after SIGTERM" % code)
        return 1 if failures or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
