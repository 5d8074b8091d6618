#!/usr/bin/python3
"""weightctl against a real weightd listening on TCP and a Unix socket: the
socket files get the mode asked, list/manifest/pull work over unix:PATH
(--server and WEIGHTD_TARGET), pull takes the same-node path and says so,
its file equals the TCP pull byte for byte and what torch.load reads, and a
missing side channel makes it take the stream and say why.

usage: weightctl_local_test.py WEIGHTCTL WEIGHTD DATA_DIR
"""
import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "data"))
from weightd_process import WeightdProcess  # noqa: E402

WEIGHTCTL, WEIGHTD, DATA = sys.argv[1:4]
del sys.argv[1:4]
REPO = os.path.join(DATA, "repo")


def run(*args, env=None):
    return subprocess.run([WEIGHTCTL, *args], capture_output=True, text=True, timeout=120,
                          env=env)


class LocalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="wdl", dir="/tmp")
        cls.socket = os.path.join(cls.dir.name, "w.sock")
        cls.daemon = WeightdProcess(WEIGHTD, REPO, "--listen",
                                    "127.0.0.1:0,unix:" + cls.socket, "--unix_socket_mode",
                                    "0600")
        cls.second_line = cls.daemon.process.stdout.readline()
        cls.unix = "unix:" + cls.socket

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.dir.cleanup()

    def setUp(self):
        self.out = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.out.cleanup()

    def pull(self, server, name, *flags):
        path = os.path.join(self.out.name, name)
        r = run("pull", "lenet", "--server", server, "-o", path, *flags)
        self.assertEqual(r.returncode, 0, r.stderr)
        return path, r.stderr

    def test_every_address_gets_a_listening_line(self):
        self.assertEqual(self.second_line.strip(), "listening on " + self.unix)

    def test_socket_files_get_the_mode(self):
        for path in (self.socket, self.socket + ".fds"):
            st = os.stat(path)
            self.assertTrue(stat.S_ISSOCK(st.st_mode), path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, path)

    def test_pull_over_unix_is_same_node_and_equals_tcp(self):
        for name, flags in (("a.safetensors", ()), ("b.pt", ()),
                            ("half.safetensors", ("--dtype", "float16"))):
            local, said = self.pull(self.unix, name, *flags)
            self.assertIn("path: same-node (fd handoff)", said)
            remote, said_tcp = self.pull(self.daemon.address, "tcp-" + name, *flags)
            self.assertNotIn("path:", said_tcp)
            with open(local, "rb") as a, open(remote, "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        original = torch.load(os.path.join(REPO, "lenet.pt"))
        pulled = torch.load(os.path.join(self.out.name, "b.pt"))
        self.assertEqual(list(pulled), list(original))
        for k in original:
            self.assertTrue(torch.equal(pulled[k], original[k]), k)

    def test_list_and_manifest_over_unix(self):
        r = run("list", "--server", self.unix, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("lenet", [m["name"] for m in json.loads(r.stdout)])
        env = dict(os.environ, WEIGHTD_TARGET=self.unix)
        r = run("manifest", "lenet", "--json", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        tcp = run("manifest", "lenet", "--json", "--server", self.daemon.address)
        self.assertEqual(json.loads(r.stdout), json.loads(tcp.stdout))

    def test_zz_without_side_channel_pull_takes_the_stream_and_says_why(self):
        os.unlink(self.socket + ".fds")
        path, said = self.pull(self.unix, "c.safetensors")
        self.assertIn("path: stream (", said)
        self.assertIn("side channel", said)
        remote, _ = self.pull(self.daemon.address, "d.safetensors")
        with open(path, "rb") as a, open(remote, "rb") as b:
            self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
    unittest.main()
