#!/usr/bin/python3
"""weightctl's remote commands against a real weightd daemon, checked by real
PyTorch: list, manifest --json, pull into .pt and .safetensors read back with
torch.load(weights_only=True), match MODEL --target FILE.

usage: weightctl_remote_test.py WEIGHTCTL WEIGHTD DATA_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "data"))
import safetensors_io  # noqa: E402
from weightd_process import WeightdProcess  # noqa: E402

WEIGHTCTL, WEIGHTD, DATA = sys.argv[1:4]
del sys.argv[1:4]


class RemoteTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = WeightdProcess(WEIGHTD, os.path.join(DATA, "repo"))
        cls.server = cls.daemon.address
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.tmp.cleanup()

    def ctl(self, *args, code=0):
        r = subprocess.run([WEIGHTCTL, *args, "--server", self.server],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, code, r.stderr)
        return r

    def source(self, name):
        return torch.load(os.path.join(DATA, "repo", name + ".pt"))

    def test_list_names_every_model(self):
        models = json.loads(self.ctl("list", "--json").stdout)
        self.assertEqual(sorted(m["name"] for m in models),
                         ["big", "classifier", "lenet", "lenet_ddp", "lenet_half", "lenet_head100",
                          "lenet_whole", "lenet_whole_dp", "lenet_whole_legacy", "nan"])
        table = self.ctl("list").stdout
        self.assertIn("lenet_half", table)

    def test_manifest_json_matches_the_checkpoint(self):
        manifest = json.loads(self.ctl("manifest", "lenet_half", "--json").stdout)
        sd = self.source("lenet_half")
        self.assertEqual([t["name"] for t in manifest["tensors"]], list(sd.keys()))
        for t in manifest["tensors"]:
            self.assertEqual(t["dtype"], str(sd[t["name"]].dtype).replace("torch.", ""))
            self.assertEqual(t["shape"], list(sd[t["name"]].shape))

    def test_unknown_model_fails_with_a_message(self):
        r = self.ctl("manifest", "nope", code=1)
        self.assertIn("nope", r.stderr)

    def test_pull_to_pt_reads_back_equal_with_weights_only(self):
        out = os.path.join(self.tmp.name, "lenet.pt")
        r = self.ctl("pull", "lenet", "-o", out)
        self.assertEqual(r.stderr.count("\r"), 0, "no progress bar when stderr is not a terminal")
        got = torch.load(out, weights_only=True)
        want = self.source("lenet")
        self.assertEqual(list(got.keys()), list(want.keys()))
        for k, v in want.items():
            self.assertEqual(got[k].dtype, v.dtype, k)
            self.assertTrue(torch.equal(got[k], v), k)

    def test_pull_draws_a_progress_bar_on_a_terminal(self):
        import pty
        master, slave = pty.openpty()
        out = os.path.join(self.tmp.name, "tty.pt")
        r = subprocess.run([WEIGHTCTL, "pull", "lenet", "-o", out, "--server", self.server],
                           stdout=subprocess.PIPE, stderr=slave, timeout=120)
        os.close(slave)
        drawn = b""
        try:
            while True:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                drawn += chunk
        except OSError:
            pass  # EIO: the pty's other end is closed
        os.close(master)
        self.assertEqual(r.returncode, 0, drawn)
        self.assertIn(b"\r[", drawn)
        self.assertRegex(drawn, rb"KiB / [0-9.]+ KiB .*/s  ETA \d+:\d\d")

    def test_pull_with_rules_and_dtype_to_safetensors(self):
        out = os.path.join(self.tmp.name, "fc.safetensors")
        self.ctl("pull", "lenet_ddp", "--output", out, "--include", r"^module\.fc",
                 "--strip-prefix", "module.", "--dtype", "bfloat16")
        got, _ = safetensors_io.read(out)
        want = self.source("lenet")
        self.assertEqual(sorted(got.keys()), sorted(k for k in want if k.startswith("fc")))
        for k, v in got.items():
            self.assertTrue(torch.equal(v, want[k].bfloat16()), k)

    def test_pull_pt_with_rules_keeps_only_selected_and_renamed(self):
        out = os.path.join(self.tmp.name, "ddp.pt")
        self.ctl("pull", "lenet_ddp", "-o", out, "--strip-prefix", "module.",
                 "--exclude", r"\.bn\.")
        got = torch.load(out, weights_only=True)
        want = self.source("lenet")
        self.assertEqual(list(got.keys()), [k for k in want if not k.startswith("bn.")])

    def test_remote_match_reports_like_local_match(self):
        target = os.path.join(self.tmp.name, "head100.pt")
        torch.save(torch.load(os.path.join(DATA, "repo", "lenet_head100.pt")), target)
        r = self.ctl("match", "lenet", "--target", target, "--json", code=1)
        report = json.loads(r.stdout)
        self.assertEqual(sorted(m["key"] for m in report["mismatched"]),
                         sorted(["fc3.weight", "fc3.bias", "bn.weight", "bn.bias",
                                 "bn.running_mean", "bn.running_var"]))
        self.ctl("match", "lenet", "--target", target, "--on-mismatch", "skip")


if __name__ == "__main__":
    unittest.main()
