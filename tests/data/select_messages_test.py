#!/usr/bin/python3
"""weightctl on files torch.save wrote that are not a flat state dict: a
nested dict of tensors and a bare tensor get a message saying what was found
and what to pass; `--select .` takes a nested dict with dotted names; a
nested dict under "model" is still picked automatically.

usage: select_messages_test.py WEIGHTCTL [-k SUBSTRING]...
"""
import json
import os
import subprocess
import sys
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weightctl_suite  # noqa: E402


def setup(weightctl, workdir):
    torch.manual_seed(0)
    nested = {"layer1": {"weight": torch.randn(3, 2), "bias": torch.randn(3)},
              "head": {"fc": {"weight": torch.randn(2, 3)}}, "scale": torch.ones(1)}
    paths = {name: os.path.join(workdir, name + ".pt") for name in
             ("nested", "bare", "under_model")}
    torch.save(nested, paths["nested"])
    torch.save(torch.zeros(4, 5), paths["bare"])
    torch.save({"model": nested, "epoch": 3}, paths["under_model"])
    dotted = ["layer1.weight", "layer1.bias", "head.fc.weight", "scale"]

    def run(*args):
        return subprocess.run([weightctl, *args], capture_output=True, text=True, timeout=60)

    class SelectMessagesTest(unittest.TestCase):
        def test_nested_dict_says_what_it_is_and_what_to_pass(self):
            r = run("inspect", paths["nested"])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("nested dict of tensors", r.stderr)
            self.assertIn("layer1.weight", r.stderr)
            self.assertIn("--select .", r.stderr)

        def test_select_dot_gives_dotted_names(self):
            r = run("inspect", paths["nested"], "--select", ".", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([t["name"] for t in json.loads(r.stdout)["tensors"]], dotted)
            out = os.path.join(workdir, "flat.pt")
            r = run("convert", paths["nested"], out, "--select", ".")
            self.assertEqual(r.returncode, 0, r.stderr)
            got = torch.load(out, weights_only=True)
            self.assertEqual(list(got), dotted)
            self.assertTrue(torch.equal(got["head.fc.weight"], nested["head"]["fc"]["weight"]))

        def test_bare_tensor_says_so(self):
            r = run("inspect", paths["bare"])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("single tensor (float32 [4, 5])", r.stderr)
            self.assertIn("save a dict of tensors", r.stderr)

        def test_nested_dict_under_model_is_still_automatic(self):
            r = run("inspect", paths["under_model"], "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            report = json.loads(r.stdout)
            self.assertEqual(report["select"], "model")
            self.assertEqual([t["name"] for t in report["tensors"]], dotted)

    return SelectMessagesTest


if __name__ == "__main__":
    sys.exit(weightctl_suite.run("weightd-select-", setup))
