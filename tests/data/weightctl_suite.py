"""The command line and the run of a Python test that checks weightctl on files
it writes into a fresh directory, for the Python tests.

    def setup(weightctl, workdir):
        ... write the files into workdir, return the unittest.TestCase class
    sys.exit(weightctl_suite.run("weightd-my-test-", setup))

parses `PROGRAM WEIGHTCTL [-k SUBSTRING]...` (-k: run only the tests whose id
contains one of the substrings), runs the class's tests verbosely and removes
the directory afterwards. Returns the exit status: 0 all passed, 1 a test
failed, 2 bad usage.
"""
import os
import shutil
import sys
import tempfile
import unittest


def run(workdir_prefix, setup):
    args = sys.argv[1:]
    only = []
    while "-k" in args:
        i = args.index("-k")
        only.append(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.stderr.write("usage: %s WEIGHTCTL [-k SUBSTRING]...\n" %
                         os.path.basename(sys.argv[0]))
        return 2
    weightctl = os.path.abspath(args[0])
    workdir = tempfile.mkdtemp(prefix=workdir_prefix)
    try:
        test_class = setup(weightctl, workdir)
        suite = unittest.TestSuite(
            t for t in unittest.defaultTestLoader.loadTestsFromTestCase(test_class)
            if not only or any(o in t.id() for o in only))
        result = unittest.TextTestRunner(verbosity=2).run(suite)
        return 0 if result.wasSuccessful() else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
