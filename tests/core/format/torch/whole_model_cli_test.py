#!/usr/bin/python3
"""weightctl inspect and convert on whole-model files (torch.save(model)).

usage: whole_model_cli_test.py WEIGHTCTL DATA_DIR [-k SUBSTRING]...

DATA_DIR is what make_whole_models.py wrote (files + expected.json: Python's
model.state_dict() of each file). `inspect --json --checksums` must list
exactly those tensors and the module classes; `inspect` shows the classes;
`convert` must write a file torch.load(weights_only=True) reads back as that
state dict.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch
import xxhash

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "data"))
from safetensors_io import tensor_bytes  # noqa: E402

WEIGHTCTL = None
DATA = None


def weightctl(*args):
    return subprocess.run([WEIGHTCTL, *args], capture_output=True, text=True, timeout=120)


def make_test_class(expected):
    class WholeModelCliTest(unittest.TestCase):
        pass

    def inspect_test(case):
        def test(self):
            args = ["inspect", os.path.join(DATA, case["file"]), "--json", "--checksums"]
            if case["select"]:
                args += ["--select", case["select"]]
            proc = weightctl(*args)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            out = json.loads(proc.stdout)
            self.assertEqual(out["format"], case["format"])
            self.assertEqual(out["select"], case["selected"])
            self.assertEqual([[t["name"], t["dtype"], t["shape"], t["checksum"]]
                              for t in out["tensors"]], case["tensors"])
            self.assertEqual([[m["path"], m["class"]] for m in out["modules"]], case["modules"])
        return test

    for case in expected["cases"]:
        name = case["file"].replace(".", "_")
        setattr(WholeModelCliTest, "test_inspect_json_" + name, inspect_test(case))

    def test_inspect_lists_module_classes(self):
        proc = weightctl("inspect", os.path.join(DATA, "in_dict.zip.pt"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("select:  model (automatic)", proc.stdout)
        self.assertIn("  model: __main__.Detector\n", proc.stdout)
        self.assertIn("  model.backbone.blocks.0: __main__.Block\n", proc.stdout)
        self.assertIn('"epoch": 3', proc.stdout)

    def test_help_describes_whole_model_files(self):
        proc = weightctl("inspect", "--help")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Whole-model files (torch.save(model)", proc.stdout)
        self.assertIn("nn.Module.state_dict()", proc.stdout)

    def test_convert_writes_the_state_dict(self):
        case = next(c for c in expected["cases"] if c["file"] == "containers.legacy.pt")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "sd.pt")
            proc = weightctl("convert", os.path.join(DATA, case["file"]), out)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            sd = torch.load(out, weights_only=True)
            self.assertEqual([[k, str(v.dtype).replace("torch.", ""), list(v.shape),
                               "%016x" % xxhash.xxh64(tensor_bytes(v)).intdigest()]
                              for k, v in sd.items()], case["tensors"])

    def test_error_lists_candidates(self):
        proc = weightctl("inspect", os.path.join(DATA, "in_dict.legacy.pt"), "--select", "lr")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("candidates for --select: model (__main__.Detector)", proc.stderr)

    WholeModelCliTest.test_inspect_lists_module_classes = test_inspect_lists_module_classes
    WholeModelCliTest.test_help_describes_whole_model_files = test_help_describes_whole_model_files
    WholeModelCliTest.test_convert_writes_the_state_dict = test_convert_writes_the_state_dict
    WholeModelCliTest.test_error_lists_candidates = test_error_lists_candidates
    return WholeModelCliTest


def main():
    global WEIGHTCTL, DATA
    args = sys.argv[1:]
    only = []
    while "-k" in args:
        i = args.index("-k")
        only.append(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    WEIGHTCTL, DATA = os.path.abspath(args[0]), os.path.abspath(args[1])
    with open(os.path.join(DATA, "expected.json")) as f:
        test_class = make_test_class(json.load(f))
    suite = unittest.TestSuite(
        t for t in unittest.defaultTestLoader.loadTestsFromTestCase(test_class)
        if not only or any(o in t.id() for o in only))
    return 0 if unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
