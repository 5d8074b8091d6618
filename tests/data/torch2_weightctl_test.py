#!/usr/bin/python3
"""weightctl and weightd with the torch 2.x dtypes, checked by torch itself.

Usage: python3 torch2_weightctl_test.py WEIGHTCTL WEIGHTD

Every one of float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz,
uint16, uint32, uint64, from a file torch.save wrote, through:
  - weightctl inspect (dtype names, xxh64 of the bytes), in .pt and
    .safetensors;
  - weightctl convert .pt -> .safetensors -> .pt: torch.load(weights_only=True)
    gives the same bits; safetensors' own safe_open reads the .safetensors
    (all but the FNUZ pair, which safetensors 0.4.5 has no codes for);
  - a weightd serving the .pt: weightctl manifest names the dtypes, pull gives
    the same bits, pull --dtype float32/bfloat16 gives what torch's .to()
    gives, and pull --dtype float8_e4m3fn from float32 too; weightctl match
    of the .pt against itself matches everything.
Exit 77 (ctest's SKIP_RETURN_CODE) with the reason under a torch without these
dtypes (1.13) or without python3-safetensors: the torch 2.6 lane runs it.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch
import xxhash

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NAMES = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
         "uint16", "uint32", "uint64"]
WEIGHTCTL = WEIGHTD = None


def skip_reason():
    missing = [n for n in NAMES if not hasattr(torch, n)]
    if missing:
        return f"torch {torch.__version__} has no {', '.join(missing)}"
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return "python3-safetensors is not installed"
    return None


def bits(t):
    return t.contiguous().view(-1).view(torch.uint8)


def state_dict():
    all256 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    sd = {n: all256.clone().view(getattr(torch, n)).reshape(16, 16) for n in NAMES[:4]}
    sd["uint16"] = torch.tensor([0, 1, 65535, 40000], dtype=torch.int32).to(torch.uint16)
    sd["uint32"] = torch.tensor([[0, 2**32 - 1], [7, 2**31]]).to(torch.uint32)
    sd["uint64"] = torch.tensor([-1, -2**63, 5]).to(torch.uint64)
    sd["float32"] = torch.tensor([0.0, -0.0, 1.0, 448.0, 464.0, 480.0, 1e-3, float("inf"),
                                  float("nan"), -57344.0, 65536.0, 2.0**-9, 2.0**-10])
    return sd


class Torch2WeightctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.repo = os.path.join(cls.tmp.name, "repo")
        os.makedirs(cls.repo)
        cls.pt = os.path.join(cls.repo, "torch2.pt")
        torch.save(state_dict(), cls.pt)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def ctl(self, *args, code=0):
        r = subprocess.run([WEIGHTCTL, *args], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, code, f"weightctl {' '.join(args)}: {r.stderr}")
        return r

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def expect_same_bits(self, got, want, keys=None):
        for k in keys or want:
            self.assertEqual(got[k].dtype, want[k].dtype, k)
            self.assertEqual(got[k].shape, want[k].shape, k)
            self.assertTrue(torch.equal(bits(got[k]), bits(want[k])), k)

    def test_inspect_names_the_dtypes_and_checksums_the_bytes(self):
        out = json.loads(self.ctl("inspect", self.pt, "--json", "--checksums").stdout)
        want = state_dict()
        self.assertEqual([t["name"] for t in out["tensors"]], list(want))
        for t in out["tensors"]:
            v = want[t["name"]]
            self.assertEqual(t["dtype"], str(v.dtype).replace("torch.", ""))
            self.assertEqual(int(t["checksum"], 16), xxhash.xxh64(bits(v).numpy()).intdigest())

    def test_convert_round_trips_through_safetensors_bit_for_bit(self):
        st, back = self.path("c.safetensors"), self.path("back.pt")
        self.ctl("convert", self.pt, st)
        self.ctl("convert", st, back)
        want = state_dict()
        self.expect_same_bits(torch.load(back, weights_only=True), want)
        out = json.loads(self.ctl("inspect", st, "--json").stdout)
        self.assertEqual([t["dtype"] for t in out["tensors"]],
                         [str(v.dtype).replace("torch.", "") for v in want.values()])

    def test_safetensors_library_reads_what_convert_writes(self):
        # Without the FNUZ pair: safetensors 0.4.5 (trixie) has no codes for
        # them and refuses the whole header; newer safetensors has them.
        from safetensors import safe_open
        import safetensors.torch
        want = {k: v for k, v in state_dict().items() if "fnuz" not in k}
        src, st = self.path("no_fnuz.pt"), self.path("no_fnuz.safetensors")
        torch.save(want, src)
        self.ctl("convert", src, st)
        with safe_open(st, framework="pt") as f:
            for k in NAMES[:2] + ["float32"]:
                self.expect_same_bits({k: f.get_tensor(k)}, want, [k])
        # U16/U32/U64 through numpy where safetensors.torch does not map them.
        with safe_open(st, framework="np") as f:
            for k in ("uint16", "uint32", "uint64"):
                self.assertEqual(f.get_tensor(k).tobytes(), bits(want[k]).numpy().tobytes(), k)
        if all(c in safetensors.torch._TYPES for c in ("U16", "U32", "U64")):
            self.expect_same_bits(safetensors.torch.load_file(st), want)

    def test_safetensors_library_file_converts_to_pt_that_torch_loads(self):
        import safetensors.torch
        src, out = self.path("lib.safetensors"), self.path("lib.pt")
        want = {k: v for k, v in state_dict().items() if k in (NAMES[:2] + ["float32"])}
        safetensors.torch.save_file(want, src, {"format": "pt"})
        self.ctl("convert", src, out)
        self.expect_same_bits(torch.load(out, weights_only=True), want)

    def test_served_model_pulls_and_casts_as_torch_does(self):
        from weightd_process import WeightdProcess
        daemon = WeightdProcess(WEIGHTD, self.repo)
        try:
            server = ["--server", daemon.address]
            manifest = json.loads(self.ctl("manifest", "torch2", "--json", *server).stdout)
            want = state_dict()
            self.assertEqual([t["dtype"] for t in manifest["tensors"]],
                             [str(v.dtype).replace("torch.", "") for v in want.values()])
            out = self.path("pulled.pt")
            self.ctl("pull", "torch2", "-o", out, *server)
            self.expect_same_bits(torch.load(out, weights_only=True), want)
            for cast in ("float32", "bfloat16", "float16"):
                out = self.path(f"pulled_{cast}.safetensors")
                self.ctl("pull", "torch2", "-o", out, "--dtype", cast, "--include", "^float8",
                         *server)
                import safetensors.torch
                got = safetensors.torch.load_file(out)
                ref = {k: v.to(getattr(torch, cast)) for k, v in want.items()
                       if k.startswith("float8")}
                self.expect_same_bits(got, ref)
            for fp8 in NAMES[:4]:
                out = self.path(f"to_{fp8}.pt")
                self.ctl("pull", "torch2", "-o", out, "--dtype", fp8, "--include", "^float32$",
                         *server)
                got = torch.load(out, weights_only=True)
                self.expect_same_bits(got, {"float32": want["float32"].to(getattr(torch, fp8))})
            report = json.loads(self.ctl("match", "torch2", "--target", self.pt, "--json",
                                         *server).stdout)
            self.assertEqual(len(report["matched"]), len(want), report)
        finally:
            daemon.stop()


if __name__ == "__main__":
    reason = skip_reason()
    if reason:
        print(f"SKIP: {reason}; the torch 2.6 lane runs this test")
        sys.exit(77)
    WEIGHTCTL, WEIGHTD = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1] + sys.argv[3:], verbosity=2)
