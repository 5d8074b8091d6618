#!/usr/bin/python3
"""Differential test: weightctl against Python PyTorch on real checkpoints.

Usage: /usr/bin/python3 differential_test.py WEIGHTCTL [-k SUBSTRING]...

For every case of make_checkpoints.py (torchvision state dicts, training
checkpoints, every dtype, views, protocol 4, legacy, safetensors...):
  - `weightctl inspect --json --checksums` must report the same format,
    selection, tensor names, dtypes, shapes, nbytes and xxHash64 of the bytes
    as Python, and the same metadata;
  - `weightctl convert` to .pt must give a file that Python's
    torch.load(weights_only=True) reads back equal (torch.equal), and to
    .safetensors a spec-conformant file with the same tensors.
One test method per case and check, so a failure names the case.
"""

import json
import os
import subprocess
import sys
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_checkpoints  # noqa: E402
import safetensors_io  # noqa: E402
import weightctl_suite  # noqa: E402

WEIGHTCTL = None
WORKDIR = None
TIMEOUT_S = 120
MAX_DIFF_LINES = 15


def run_weightctl(*args):
    proc = subprocess.run([WEIGHTCTL, *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    return proc


def inspect_json(testcase, path, select_arg=None):
    args = ["inspect", path, "--json", "--checksums"]
    if select_arg is not None:
        args += ["--select", select_arg]
    proc = run_weightctl(*args)
    testcase.assertEqual(proc.returncode, 0,
                         "weightctl %s failed (exit %d):\n%s" %
                         (" ".join(args), proc.returncode, proc.stderr))
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        testcase.fail("weightctl %s printed no single JSON object (%s):\n%s" %
                      (" ".join(args), e, proc.stdout[:2000]))


def tensor_diff(expected, actual):
    """Lines describing how two tensor lists (inspect JSON form) differ."""
    lines = []
    if len(expected) != len(actual):
        lines.append("tensor count: expected %d, weightctl %d" % (len(expected), len(actual)))
        names_e = [t["name"] for t in expected]
        names_a = [t["name"] for t in actual]
        missing = [n for n in names_e if n not in names_a]
        extra = [n for n in names_a if n not in names_e]
        if missing:
            lines.append("  missing: %s" % missing[:10])
        if extra:
            lines.append("  unexpected: %s" % extra[:10])
    for i, (e, a) in enumerate(zip(expected, actual)):
        for field in ("name", "dtype", "shape", "nbytes", "checksum"):
            if e.get(field) != a.get(field):
                lines.append("tensor %d (%s): %s expected %r, weightctl %r" %
                             (i, e["name"], field, e.get(field), a.get(field)))
        if len(lines) >= MAX_DIFF_LINES:
            lines.append("...")
            break
    return lines


def check_inspect(testcase, case, path, select_arg, expected_format, expected_select,
                  expected_metadata):
    got = inspect_json(testcase, path, select_arg)
    expected = make_checkpoints.describe_tensors(case.tensors)
    problems = []
    if got.get("format") != expected_format:
        problems.append("format: expected %r, weightctl %r" % (expected_format, got.get("format")))
    if got.get("select") != expected_select:
        problems.append("select: expected %r, weightctl %r" % (expected_select, got.get("select")))
    problems += tensor_diff(expected, got.get("tensors", []))
    if expected_metadata is not None:
        diff = make_checkpoints.json_equal(expected_metadata, got.get("metadata"))
        if diff:
            problems.append(diff)
    if problems:
        testcase.fail("%s (%s):\n  %s" % (case.name, path, "\n  ".join(problems)))


def convert(testcase, case, suffix):
    out = os.path.join(WORKDIR, "converted", case.name + suffix)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    args = ["convert", os.path.join(WORKDIR, case.file), out]
    if case.select_arg is not None:
        args += ["--select", case.select_arg]
    proc = run_weightctl(*args)
    testcase.assertEqual(proc.returncode, 0, "weightctl %s failed (exit %d):\n%s" %
                         (" ".join(args), proc.returncode, proc.stderr))
    return out


def compare_tensors(testcase, case, loaded, source):
    """loaded: name -> tensor read back by Python from a converted file."""
    names = [n for n, _ in case.tensors]
    testcase.assertEqual(list(loaded), names, "%s: names or order differ in %s" %
                         (case.name, source))
    problems = []
    for name, want in case.tensors:
        got = loaded[name]
        if got.dtype != want.dtype:
            problems.append("%s: dtype %s, expected %s" % (name, got.dtype, want.dtype))
        elif tuple(got.shape) != tuple(want.shape):
            problems.append("%s: shape %s, expected %s" %
                            (name, list(got.shape), list(want.shape)))
        elif not torch.equal(got, want):
            problems.append("%s: values differ" % name)
        if len(problems) >= MAX_DIFF_LINES:
            break
    if problems:
        testcase.fail("%s (%s):\n  %s" % (case.name, source, "\n  ".join(problems)))


def make_test_class(cases):
    class DifferentialTest(unittest.TestCase):
        maxDiff = None

    def inspect_test(case):
        def test(self):
            check_inspect(self, case, os.path.join(WORKDIR, case.file), case.select_arg,
                          case.format, case.select, case.metadata)
        return test

    def pt_test(case):
        def test(self):
            out = convert(self, case, ".pt")
            loaded = torch.load(out, weights_only=True)
            self.assertIsInstance(loaded, dict, "%s: %s is not a dict" % (case.name, out))
            compare_tensors(self, case, loaded, out)
            check_inspect(self, case, out, None, "torch_zip", "", None)
        return test

    def safetensors_test(case):
        def test(self):
            out = convert(self, case, ".safetensors")
            try:
                loaded, _ = safetensors_io.read(out)
            except (ValueError, KeyError) as e:
                self.fail("%s: %s does not follow the safetensors spec: %s" % (case.name, out, e))
            compare_tensors(self, case, loaded, out)
            check_inspect(self, case, out, None, "safetensors", "", None)
        return test

    for case in cases:
        setattr(DifferentialTest, "test_inspect_" + case.name, inspect_test(case))
        setattr(DifferentialTest, "test_convert_pt_" + case.name, pt_test(case))
        setattr(DifferentialTest, "test_convert_safetensors_" + case.name,
                safetensors_test(case))
    return DifferentialTest


def setup(weightctl, workdir):
    global WEIGHTCTL, WORKDIR
    WEIGHTCTL, WORKDIR = weightctl, workdir
    return make_test_class(make_checkpoints.generate(WORKDIR))


if __name__ == "__main__":
    sys.exit(weightctl_suite.run("weightd-differential-", setup))
