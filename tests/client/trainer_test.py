#!/usr/bin/python3
"""Runs examples/trainer (built against the installed weightd) against a real
daemon: it loads the classifier with a remap and a new head, then trains.

usage: trainer_test.py TRAINER WEIGHTD DATA_DIR
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from weightd_process import WeightdProcess  # noqa: E402

trainer, weightd, data = sys.argv[1:4]
daemon = WeightdProcess(weightd, os.path.join(data, "repo"))
try:
    run = subprocess.run([trainer, "--server", daemon.address, "--steps", "3"],
                         capture_output=True, text=True, timeout=120)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.returncode
    out = run.stdout
    assert re.search(r"^loaded classifier v1 from .*: 8 tensors", out, re.M), out
    assert "skipped (shape) model.fc3.weight: checkpoint [10, 84], model [5, 84]" in out, out
    # Skipped keys keep their initial values under strict=True (the default):
    # neither missing nor a failure.
    assert "missing" not in out, out
    assert re.search(r"^step 3 loss [0-9.]+$", out, re.M), out
finally:
    daemon.stop()
print("ok")
