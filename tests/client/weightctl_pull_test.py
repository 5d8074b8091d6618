#!/usr/bin/python3
"""weightctl pull against a real weightd: the output is checked before any
download, tensors stream into the file (flat memory; the same bytes that
`weightctl convert` writes), an interrupted pull leaves no temporary file,
and selecting nothing is an error.

usage: weightctl_pull_test.py WEIGHTCTL WEIGHTD DATA_DIR
"""
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "data"))
import safetensors_io  # noqa: E402
from weightd_process import WeightdProcess  # noqa: E402

WEIGHTCTL, WEIGHTD, DATA = sys.argv[1:4]
del sys.argv[1:4]
REPO = os.path.join(DATA, "repo")
# Nothing listens here: a pull that fails before connecting never notices.
NOWHERE = "127.0.0.1:1"
# Runs argv[1:], prints its peak RSS in KiB, exits with its status.
WAIT4 = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(*args, env=None):
    return subprocess.run([WEIGHTCTL, *args], capture_output=True, text=True, timeout=120,
                          env=env)


class PullTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = WeightdProcess(WEIGHTD, REPO)
        cls.server = cls.daemon.address

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def pull(self, *args, code=0):
        r = run("pull", *args, "--server", self.server)
        self.assertEqual(r.returncode, code, r.stderr)
        return r

    def leftovers(self):
        return sorted(os.listdir(self.dir))

    def test_unknown_format_fails_before_connecting_like_convert(self):
        out = os.path.join(self.dir, "lenet.txt")
        pulled = run("pull", "lenet", "-o", out, "--server", NOWHERE)
        converted = run("convert", os.path.join(REPO, "lenet.pt"), out)
        self.assertEqual(pulled.returncode, 2, pulled.stderr)
        self.assertEqual(converted.returncode, 2, converted.stderr)
        self.assertEqual(pulled.stderr, converted.stderr)
        for extension in (".safetensors", ".pt", ".pth", ".bin"):
            self.assertIn(extension, pulled.stderr)
        self.assertNotIn("unavailable", pulled.stderr)
        self.assertEqual(self.leftovers(), [])

    def test_unwritable_directory_fails_before_connecting(self):
        out = os.path.join(self.dir, "no", "such", "dir", "lenet.pt")
        r = run("pull", "lenet", "-o", out, "--server", NOWHERE)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(out, r.stderr)
        self.assertNotIn("unavailable", r.stderr)

    def test_include_that_selects_nothing_fails_and_writes_nothing(self):
        out = os.path.join(self.dir, "none.safetensors")
        r = self.pull("lenet", "-o", out, "--include", "^nomatch$", code=1)
        self.assertIn("--include", r.stderr)
        self.assertEqual(self.leftovers(), [])

    def test_bin_is_torch_zip(self):
        out = os.path.join(self.dir, "pytorch_model.bin")
        self.pull("lenet", "-o", out)
        want = torch.load(os.path.join(REPO, "lenet.pt"))
        got = torch.load(out, weights_only=True)
        self.assertEqual(list(got), list(want))
        for k in want:
            self.assertTrue(torch.equal(got[k], want[k]), k)

    def test_streamed_files_are_the_bytes_convert_writes(self):
        # lenet_half mixes float16 and float32 (and int64 counters): the
        # safetensors layout puts them out of arrival order.
        for model in ("big", "lenet_half"):
            for ext in (".safetensors", ".pt"):
                pulled = os.path.join(self.dir, model + "-pulled" + ext)
                converted = os.path.join(self.dir, model + "-converted" + ext)
                self.pull(model, "-o", pulled, "--quiet")
                r = run("convert", os.path.join(REPO, model + ".pt"), converted, "--quiet")
                self.assertEqual(r.returncode, 0, r.stderr)
                with open(pulled, "rb") as a, open(converted, "rb") as b:
                    self.assertTrue(a.read() == b.read(), model + ext)
        got, _ = safetensors_io.read(os.path.join(self.dir, "lenet_half-pulled.safetensors"))
        want = torch.load(os.path.join(REPO, "lenet_half.pt"))
        self.assertEqual(sorted(got), sorted(want))
        for k in want:
            self.assertTrue(torch.equal(got[k], want[k]), k)

    def max_rss_kib(self, *args):
        # A child's ru_maxrss includes what it inherited before exec (this
        # process, with torch, is ~230 MiB), so a small Python forks it.
        r = subprocess.run([sys.executable, "-S", "-c", WAIT4, WEIGHTCTL, *args, "--server",
                            self.server], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return int(r.stdout.split()[-1])

    def test_pull_does_not_hold_the_model_in_memory(self):
        # "big" is 32 MiB; a pull that gathered it would peak that much above
        # a manifest call (gathering: +42 MiB, streaming: +15 MiB of gRPC
        # buffers, measured).
        baseline = self.max_rss_kib("manifest", "big")
        for ext in (".safetensors", ".pt"):
            peak = self.max_rss_kib("pull", "big", "-o", os.path.join(self.dir, "big" + ext))
            self.assertLess(peak - baseline, 24 * 1024, ext)

    def interrupt(self, signal_number):
        """Starts a pull against a stopped server, so that it waits with its
        temporary file open, then sends it `signal_number`."""
        stopped = WeightdProcess(WEIGHTD, REPO)
        os.kill(stopped.process.pid, signal.SIGSTOP)
        try:
            out = os.path.join(self.dir, "big.safetensors")
            p = subprocess.Popen([WEIGHTCTL, "pull", "big", "-o", out, "--server",
                                  stopped.address], stderr=subprocess.PIPE)
            deadline = time.time() + 30
            while not glob.glob(out + ".tmp-*") and time.time() < deadline:
                time.sleep(0.02)
            self.assertTrue(glob.glob(out + ".tmp-*"), "the pull made no temporary file")
            p.send_signal(signal_number)
            self.assertEqual(p.wait(timeout=30), -signal_number)
            p.stderr.close()
            self.assertEqual(self.leftovers(), [])
        finally:
            os.kill(stopped.process.pid, signal.SIGCONT)
            stopped.stop()

    def test_sigterm_removes_the_temporary_file(self):
        self.interrupt(signal.SIGTERM)

    def test_sigint_removes_the_temporary_file(self):
        self.interrupt(signal.SIGINT)

    def test_integer_dtype_needs_force(self):
        out = os.path.join(self.dir, "int8.safetensors")
        r = self.pull("lenet", "-o", out, "--dtype", "int8", code=2)
        self.assertIn("--force", r.stderr)
        self.assertEqual(self.leftovers(), [])
        self.pull("lenet", "-o", out, "--dtype", "int8", "--force")
        got, _ = safetensors_io.read(out)
        self.assertTrue(all(v.dtype == torch.int8 for v in got.values()))


if __name__ == "__main__":
    unittest.main()
