#!/usr/bin/python3
"""The weightd binary over a Hugging Face hub cache, checked by torch itself.

make_hf_cache.py writes the cache into a temporary directory; weightctl
lists and pulls from a real weightd, and the pulled tensors must equal what
torch (and the safetensors reader of tests/data) read from the blobs.
Without --follow_external_symlinks the model linking out of the cache is
refused with a reason; with it, it is served.

usage: hf_cache_daemon_test.py WEIGHTCTL WEIGHTD
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
import safetensors_io  # noqa: E402
from weightd_process import WeightdProcess  # noqa: E402

WEIGHTCTL, WEIGHTD = sys.argv[1], sys.argv[2]


class HfCacheDaemonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        subprocess.run([sys.executable, os.path.join(HERE, "make_hf_cache.py"), cls.tmp.name],
                       check=True)
        with open(os.path.join(cls.tmp.name, "expected.json")) as f:
            cls.revs = json.load(f)["revisions"]
        cls.hub = os.path.join(cls.tmp.name, "hub")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def ctl(self, daemon, *args, code=0):
        r = subprocess.run([WEIGHTCTL, "--server", daemon.address, *args], capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, code, f"weightctl {' '.join(args)}: {r.stderr}")
        return r

    def snapshot(self, model, rev_key, name):
        return os.path.join(self.hub, "models--" + model, "snapshots", self.revs[rev_key], name)

    def pull(self, daemon, model, *args):
        out = os.path.join(self.tmp.name, "pulled.pt")
        self.ctl(daemon, "pull", model, "-o", out, "--quiet", *args)
        return torch.load(out)

    def expect_equal(self, got, want):
        self.assertEqual(sorted(got), sorted(want))
        for k in want:
            self.assertEqual(got[k].dtype, want[k].dtype, k)
            self.assertTrue(torch.equal(got[k], want[k]), k)

    def daemon(self, *flags):
        daemon = WeightdProcess(WEIGHTD, self.hub, *flags)
        self.addCleanup(daemon.stop)
        return daemon

    def test_lists_snapshots_newest_from_refs_main_and_skips_with_reasons(self):
        daemon = self.daemon()
        models = {m["name"]: m for m in json.loads(self.ctl(daemon, "list", "--json").stdout)}
        tiny = models["org--tiny"]["versions"]
        self.assertEqual([v["version"] for v in tiny], [3, 2, 1])
        self.assertIn(self.revs["main"], tiny[0]["path"])
        text = self.ctl(daemon, "list").stdout
        self.assertIn(f"models--org--tiny/snapshots/{self.revs['partial']}: no checkpoint", text)
        self.assertIn("models--org--nomain: models--org--nomain/: refs/main names snapshot", text)

    def test_pulled_tensors_equal_torchs_reading_of_the_blobs(self):
        daemon = self.daemon()
        shards = {}
        for i in (1, 2):
            part, _ = safetensors_io.read(
                self.snapshot("org--tiny", "main", f"model-0000{i}-of-00002.safetensors"))
            shards.update(part)
        self.expect_equal(self.pull(daemon, "org--tiny"), shards)
        self.expect_equal(self.pull(daemon, "org--tiny", "--version", "2"),
                          torch.load(self.snapshot("org--tiny", "bin", "pytorch_model.bin")))
        # safetensors is preferred over the pytorch_model.bin beside it.
        both, _ = safetensors_io.read(self.snapshot("org--tiny", "both", "model.safetensors"))
        self.expect_equal(self.pull(daemon, "org--tiny", "--version", "1"), both)

    def test_symlink_leaving_the_cache_is_refused_unless_allowed(self):
        refused = self.ctl(self.daemon(), "manifest", "org--escape", code=1)
        self.assertIn("resolves outside the repository", refused.stderr)
        self.assertIn("--follow_external_symlinks", refused.stderr)
        outside, _ = safetensors_io.read(
            os.path.join(self.tmp.name, "outside", "model.safetensors"))
        allowed = self.daemon("--follow_external_symlinks")
        self.expect_equal(self.pull(allowed, "org--escape"), outside)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:])
