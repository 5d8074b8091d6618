#!/usr/bin/python3
"""Runs `weightctl inspect` on every file of the bad-input corpus.

Usage: /usr/bin/python3 bad_corpus_test.py WEIGHTCTL [-k SUBSTRING]...

Each bad file (make_bad_corpus.py) must be refused cleanly: exit code 1 (not
a signal, not 0, not a hang past 30 s, not an allocation past 2 GiB of address
space), exactly one line on stderr, naming the file and containing the
expected part of the reason, and the canary file that hostile payloads would
`touch` must not exist afterwards. Each control file must read fine, so that a
bad file fails for its own defect and not for a fault of the generator.
"""

import json
import os
import resource
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_bad_corpus  # noqa: E402
import weightctl_suite  # noqa: E402

WEIGHTCTL = None
CORPUS = None
# A hang shows as a timeout. A run takes well under a second idle but several
# seconds on a loaded 2-core CI machine, so the bound leaves room for that: a
# parser hang still trips it.
TIMEOUT_S = 30
# Below the 1.5 GiB zip bomb, which must fail to allocate. weightctl maps
# under 64 MB of address space itself (0.5-0.75 GB when it linked LibTorch).
ADDRESS_SPACE_BYTES = 1 << 30


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def inspect(path):
    """(returncode or None on timeout, stdout, stderr)."""
    try:
        proc = subprocess.run([WEIGHTCTL, "inspect", path], capture_output=True, text=True,
                              errors="replace", timeout=TIMEOUT_S, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", e.stderr or ""
    return proc.returncode, proc.stdout, proc.stderr


def make_test_class(manifest):
    class BadCorpusTest(unittest.TestCase):
        pass

    def bad_test(entry):
        def test(self):
            path = os.path.join(CORPUS, entry["file"])
            code, _, err = inspect(path)
            what = "%s (%s)" % (entry["file"], entry["what"])
            self.assertIsNotNone(code, "%s: no answer within %d s" % (what, TIMEOUT_S))
            self.assertGreaterEqual(code, 0, "%s: killed by signal %d; stderr:\n%s" %
                                    (what, -code, err))
            self.assertEqual(code, 1, "%s: exit %d, expected 1; stderr:\n%s" % (what, code, err))
            lines = err.splitlines()
            self.assertEqual(len(lines), 1, "%s: %d stderr lines, expected 1:\n%s" %
                             (what, len(lines), err))
            self.assertIn(entry["file"], lines[0], "%s: the message does not name the file" %
                          what)
            self.assertIn(entry["expect"], lines[0], "%s: the message does not give the reason" %
                          what)
            self.assertFalse(os.path.exists(manifest["canary"]),
                             "%s: the canary exists: a payload ran" % what)
        return test

    def good_test(entry):
        def test(self):
            code, _, err = inspect(os.path.join(CORPUS, entry["file"]))
            self.assertEqual(code, 0, "control %s (%s) failed: exit %s\n%s" %
                             (entry["file"], entry["what"], code, err))
            self.assertFalse(os.path.exists(manifest["canary"]),
                             "control %s: the canary exists: a payload ran" % entry["file"])
        return test

    def test_canary_works(self):
        # The payloads' command does create the canary when something runs
        # it, so its absence after each file means nothing ran.
        canary = manifest["canary"]
        self.assertEqual(os.system("touch " + canary), 0)
        self.assertTrue(os.path.exists(canary))
        os.remove(canary)

    BadCorpusTest.test_canary_works = test_canary_works

    for entry in manifest["bad"]:
        name = os.path.basename(entry["file"]).replace(".", "_").replace("-", "_")
        setattr(BadCorpusTest, "test_rejects_" + name, bad_test(entry))
    for entry in manifest["good"]:
        name = os.path.basename(entry["file"]).replace(".", "_").replace("-", "_")
        setattr(BadCorpusTest, "test_reads_control_" + name, good_test(entry))
    return BadCorpusTest


def setup(weightctl, corpus):
    global WEIGHTCTL, CORPUS
    WEIGHTCTL, CORPUS = weightctl, corpus
    make_bad_corpus.build(CORPUS)
    with open(os.path.join(CORPUS, "manifest.json")) as f:
        return make_test_class(json.load(f))


if __name__ == "__main__":
    sys.exit(weightctl_suite.run("weightd-bad-corpus-", setup))
