#!/usr/bin/python3
"""Runs examples/trainer (built against the installed weightd) against a real
daemon: it loads the classifier with a remap and a new head, then trains.

usage: trainer_test.py TRAINER WEIGHTD DATA_DIR
"""
import os
import re
import subprocess
import sys

trainer, weightd, data = sys.argv[1:4]
daemon = subprocess.Popen([weightd, "--repository", os.path.join(data, "repo"),
                           "--listen", "127.0.0.1:0", "--minloglevel", "2"],
                          stdout=subprocess.PIPE, text=True)
try:
    line = daemon.stdout.readline()
    assert line.startswith("listening on "), line
    run = subprocess.run([trainer, "--server", line.split()[-1], "--steps", "3"],
                         capture_output=True, text=True, timeout=120)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.returncode
    out = run.stdout
    assert re.search(r"^loaded classifier v1 from .*: 8 tensors", out, re.M), out
    assert "skipped (shape) model.fc3.weight: checkpoint [10, 84], model [5, 84]" in out, out
    assert "missing model.fc3.weight" in out, out
    assert re.search(r"^step 3 loss [0-9.]+$", out, re.M), out
finally:
    daemon.terminate()
    daemon.wait(timeout=30)
print("ok")
