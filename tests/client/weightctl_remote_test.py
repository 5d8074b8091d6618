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
import xxhash

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

    def test_manifest_checksums_flag_skips_or_limits_the_hashing(self):
        def checksums(which):
            out = self.ctl("manifest", "lenet", "--checksums", which, "--json").stdout
            return [t["checksum"] for t in json.loads(out)["tensors"]]
        sd = self.source("lenet")
        self.assertEqual(checksums("none"), [""] * len(sd))
        table = self.ctl("manifest", "lenet", "--checksums", "none").stdout
        self.assertRegex(table, r"conv1\.weight .* -\n")
        full = checksums("all")
        self.assertEqual(full, [xxhash.xxh64(safetensors_io.tensor_bytes(t)).hexdigest()
                                for t in sd.values()])
        self.assertEqual(checksums("known"), full)  # computed by "all", then kept
        r = self.ctl("manifest", "lenet", "--checksums", "some", code=2)
        self.assertIn("--checksums some", r.stderr)

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

    def test_manifest_metadata_keeps_the_checkpoint_order_and_floats(self):
        # A google.protobuf.Struct is a map: three calls gave three key
        # orders, and 5.0 came back as 5.
        path = os.path.join(DATA, "repo", "classifier", "1", "checkpoint.pt")
        local = subprocess.run([WEIGHTCTL, "inspect", path, "--json"], capture_output=True,
                               text=True, timeout=120, check=True).stdout
        want = json.loads(local)["metadata"]
        want_text = json.dumps(want)
        self.assertEqual(list(want), ["epoch", "loss", "zeta", "best_epoch", "optimizer",
                                      "momentum", "schedule", "alpha"])
        for _ in range(3):
            got = json.loads(self.ctl("manifest", "classifier", "--json").stdout)["metadata"]
            self.assertEqual(json.dumps(got), want_text)
        raw = self.ctl("manifest", "classifier", "--json").stdout
        self.assertIn('"zeta":5.0', raw.replace(" ", ""))
        self.assertIn('"best_epoch":3,', raw.replace(" ", ""))
        self.assertIn('"lr":1.0', raw.replace(" ", ""))
        text = self.ctl("manifest", "classifier").stdout
        self.assertIn('"zeta":5.0', text.replace(" ", ""))

    def test_list_says_what_the_server_skipped(self):
        table = self.ctl("list").stdout
        self.assertIn("skipped (", table)
        self.assertIn("notes.txt: neither a model directory nor a .pt, .pth or .safetensors file",
                      table)

    def test_remote_match_says_why_nothing_matched(self):
        target = os.path.join(self.tmp.name, "lenet_target.pt")
        torch.save(self.source("lenet"), target)
        r = self.ctl("match", "lenet_ddp", "--target", target, "--no-strict", code=1)
        self.assertIn("no tensor matched: 0 of", r.stdout)
        self.assertNotIn("load would succeed", r.stdout)
        self.ctl("match", "lenet_ddp", "--target", target, "--no-strict", "--allow-empty")
        self.ctl("match", "lenet_ddp", "--target", target, "--auto")

    def test_target_errors_name_the_file_once_and_the_right_flag(self):
        target = os.path.join(self.tmp.name, "nostate.pt")
        torch.save({"epoch": 1, "weights": {"w": torch.zeros(2)}}, target)
        r = self.ctl("match", "lenet", "--target", target, code=1)
        line = r.stderr.strip().splitlines()[-1]
        self.assertEqual(line.count(target), 1, line)
        self.assertIn("--target-select", line)
        self.assertNotIn("--select", line.replace("--target-select", ""))

    def test_server_without_a_valid_port_is_a_usage_error(self):
        # "--server 127.0.0.1" used to dial port 0, ":99999" port 34463.
        for server in ["127.0.0.1", "127.0.0.1:99999", "127.0.0.1:65536", "[::1]",
                       "dns:///localhost"]:
            r = subprocess.run([WEIGHTCTL, "list", "--server", server], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(r.returncode, 2, (server, r.stderr))
            self.assertIn("is not HOST:PORT", r.stderr)
        # unix: targets pass through unchanged: no such socket, a connection error.
        r = subprocess.run([WEIGHTCTL, "list", "--server", "unix:/nonexistent/weightd.sock"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_remote_match_reports_like_local_match(self):
        target = os.path.join(self.tmp.name, "head100.pt")
        torch.save(torch.load(os.path.join(DATA, "repo", "lenet_head100.pt")), target)
        r = self.ctl("match", "lenet", "--target", target, "--json", code=1)
        report = json.loads(r.stdout)
        self.assertEqual(sorted(m["key"] for m in report["mismatched"]),
                         sorted(["fc3.weight", "fc3.bias", "bn.weight", "bn.bias",
                                 "bn.running_mean", "bn.running_var"]))
        self.ctl("match", "lenet", "--target", target, "--on-mismatch", "skip")

    def raw(self, *args, env=None, code=0):
        r = subprocess.run([WEIGHTCTL, *args], capture_output=True, text=True, timeout=120,
                           env=env)
        self.assertEqual(r.returncode, code, r.stderr)
        return r

    def test_global_flags_before_the_command(self):
        table = self.raw("--server", self.server, "list").stdout
        self.assertIn("lenet_half", table)
        manifest = json.loads(self.raw("--json", "--server=" + self.server, "manifest",
                                       "lenet").stdout)
        self.assertEqual(manifest["model"], "lenet")
        r = self.raw("--version", "1", "list", code=2)
        self.assertIn("--version goes after the command", r.stderr)

    def test_output_flag_in_any_position(self):
        out = os.path.join(self.tmp.name, "anywhere.pt")
        self.ctl("pull", "-o", out, "lenet", "--quiet")
        self.assertEqual(list(torch.load(out, weights_only=True)), list(self.source("lenet")))

    def test_weightd_target_is_the_default_server(self):
        env = dict(os.environ, WEIGHTD_TARGET=self.server)
        self.assertIn("lenet_half", self.raw("list", env=env).stdout)
        # --server still wins over the variable.
        env["WEIGHTD_TARGET"] = "127.0.0.1:1"
        self.assertIn("lenet_half", self.raw("list", "--server", self.server, env=env).stdout)

    def test_negative_version_is_bad_usage_with_a_reason(self):
        for command in (["manifest", "lenet"], ["pull", "lenet", "-o", "x.pt"]):
            r = self.ctl(*command, "--version", "-1", code=2)
            self.assertIn("--version must be a version number", r.stderr)
            self.assertIn('"-1"', r.stderr)

    def test_match_json_says_ok_errors_and_dtypes(self):
        target = os.path.join(self.tmp.name, "half-target.pt")
        torch.save(self.source("lenet"), target)
        report = json.loads(self.ctl("match", "lenet_half", "--target", target, "--json").stdout)
        self.assertIs(report["ok"], True)
        self.assertEqual(report["errors"], [])
        half = self.source("lenet_half")
        want = self.source("lenet")
        for m in report["matched"]:
            self.assertEqual(m["source_dtype"], str(half[m["source"]].dtype)[len("torch."):])
            self.assertEqual(m["target_dtype"], str(want[m["target"]].dtype)[len("torch."):])
        head = os.path.join(self.tmp.name, "head100-target.pt")
        torch.save(torch.load(os.path.join(DATA, "repo", "lenet_head100.pt")), head)
        report = json.loads(self.ctl("match", "lenet", "--target", head, "--json", code=1).stdout)
        self.assertIs(report["ok"], False)
        self.assertTrue(any("size mismatch for fc3.weight" in e for e in report["errors"]))


if __name__ == "__main__":
    unittest.main()
