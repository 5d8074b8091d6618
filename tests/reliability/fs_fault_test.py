#!/usr/bin/python3
"""File-system faults (issue 7), end to end with the real binaries:
- a checkpoint the daemon may not read (mode 000; the daemon runs as `nobody`
  when the test runs as root, who reads everything) fails that model only,
  with a message naming the file, while the others keep serving;
- a write that runs out of space (RLIMIT_FSIZE: write() fails like on a full
  disk) makes `weightctl pull` and `weightctl convert` fail with a message
  naming the output, and leaves neither the output nor a temporary file.

usage: fs_fault_test.py WEIGHTCTL WEIGHTD DATA_DIR
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from weightd_process import WeightdProcess  # noqa: E402

WEIGHTCTL, WEIGHTD, DATA = sys.argv[1:4]
del sys.argv[1:4]

NOBODY = 65534


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def small_file_limit(limit):
    def apply():
        # The default action of SIGXFSZ kills the process; ignored, write()
        # fails with EFBIG, as it fails with ENOSPC on a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


class UnreadableFileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="weightd-fs-")
        os.chmod(self.tmp, 0o755)
        self.repo = os.path.join(self.tmp, "repo")
        os.mkdir(self.repo)
        for name in ("lenet", "lenet_half"):
            shutil.copy(os.path.join(DATA, "repo", name + ".pt"), self.repo)
        os.chmod(os.path.join(self.repo, "lenet_half.pt"), 0)
        preexec = as_nobody if os.geteuid() == 0 else None
        self.daemon = WeightdProcess(WEIGHTD, self.repo, preexec_fn=preexec)
        self.server = self.daemon.address

    def tearDown(self):
        self.daemon.stop()
        shutil.rmtree(self.tmp)

    def ctl(self, *args):
        return subprocess.run([WEIGHTCTL, *args, "--server", self.server],
                              capture_output=True, text=True, timeout=120)

    def test_the_unreadable_model_fails_with_the_file_named_and_the_others_serve(self):
        r = self.ctl("manifest", "lenet_half")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("lenet_half.pt", r.stderr)
        self.assertIn("Permission denied", r.stderr)
        # The server's own file problem (FAILED_PRECONDITION), not the
        # caller's credentials (PERMISSION_DENIED makes weightctl hint at them).
        self.assertNotIn("PERMISSION_DENIED", r.stderr)
        self.assertNotIn("token", r.stderr)

        ok = self.ctl("manifest", "lenet", "--json")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertGreater(len(json.loads(ok.stdout)["tensors"]), 0)

        models = {m["name"]: m["versions"][0] for m in json.loads(self.ctl("list", "--json").stdout)}
        self.assertEqual(models["lenet_half"]["state"], "failed")
        self.assertIn("Permission denied", models["lenet_half"]["reason"])
        self.assertNotEqual(models["lenet"]["state"], "failed")


class FullDiskTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = WeightdProcess(WEIGHTD, os.path.join(DATA, "repo"))
        cls.server = cls.daemon.address

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="weightd-full-")

    def tearDown(self):
        shutil.rmtree(self.out)

    def run_limited(self, *args):
        # "big" is 32 MiB; 1 MiB of room.
        return subprocess.run([WEIGHTCTL, *args], capture_output=True, text=True, timeout=120,
                              preexec_fn=small_file_limit(1 << 20))

    def assert_failed_cleanly(self, r, target):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(target, r.stderr)
        self.assertIn("File too large", r.stderr)
        self.assertEqual(os.listdir(self.out), [], "no output and no temporary file is left")

    def test_pull_to_safetensors_on_a_full_disk_leaves_nothing(self):
        target = os.path.join(self.out, "big.safetensors")
        self.assert_failed_cleanly(
            self.run_limited("pull", "big", "-o", target, "--server", self.server), target)

    def test_pull_to_pt_on_a_full_disk_leaves_nothing(self):
        target = os.path.join(self.out, "big.pt")
        self.assert_failed_cleanly(
            self.run_limited("pull", "big", "-o", target, "--server", self.server), target)

    def test_convert_on_a_full_disk_leaves_nothing(self):
        target = os.path.join(self.out, "big.safetensors")
        self.assert_failed_cleanly(
            self.run_limited("convert", os.path.join(DATA, "repo", "big.pt"), target), target)

    def test_the_same_pull_with_room_succeeds(self):
        target = os.path.join(self.out, "big.safetensors")
        r = subprocess.run([WEIGHTCTL, "pull", "big", "-o", target, "--server", self.server],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(os.path.getsize(target), 32 << 20)


if __name__ == "__main__":
    unittest.main(verbosity=2)
