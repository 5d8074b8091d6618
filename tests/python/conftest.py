"""Fixtures of the Python client tests: a real weightd on loopback over a
repository written by real PyTorch (make_python_repository.py).

Environment:
  WEIGHTD_PYTHON_TEST_DATA  the generator's OUT_DIR (repo/, expected.json)
  WEIGHTD_BINARY            the weightd binary; the tests start it on 127.0.0.1:0
  WEIGHTD_ADDRESS           instead: HOST:PORT of a weightd already serving
                            DATA/repo (run_trixie.sh: torch 2.6 inside a root,
                            weightd outside); tests that start their own
                            daemon (TLS, tokens, unix:) are then skipped
The tests import the *installed* weightd (install_test.py makes the venv).
"""
import json
import os
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
from safetensors_io import tensor_bytes  # noqa: E402
from weightd_process import WeightdProcess  # noqa: E402

DATA = os.environ.get("WEIGHTD_PYTHON_TEST_DATA", "")
BINARY = os.environ.get("WEIGHTD_BINARY", "")
ADDRESS = os.environ.get("WEIGHTD_ADDRESS", "")

needs_binary = pytest.mark.skipif(not BINARY, reason="needs WEIGHTD_BINARY to start a weightd")


@pytest.fixture(scope="session")
def repo():
    assert DATA, "set WEIGHTD_PYTHON_TEST_DATA"
    return os.path.join(DATA, "repo")


@pytest.fixture(scope="session")
def files(repo):
    with open(os.path.join(DATA, "expected.json")) as f:
        rel = json.load(f)["files"]
    return {k: os.path.join(repo, v) for k, v in rel.items()}


@pytest.fixture(scope="session")
def address(repo):
    if ADDRESS:
        yield ADDRESS
        return
    assert BINARY, "set WEIGHTD_BINARY or WEIGHTD_ADDRESS"
    daemon = WeightdProcess(BINARY, repo)
    yield daemon.address
    assert daemon.stop() == 0


@pytest.fixture(scope="session")
def client(address):
    import weightd
    with weightd.Client(address) as c:
        yield c


def same_bits(a, b):
    """Equal dtype, shape and row-major bytes (NaN-safe, unlike torch.equal)."""
    return a.dtype == b.dtype and a.shape == b.shape and tensor_bytes(a) == tensor_bytes(b)


def assert_same_state(module, expected):
    """Every state_dict entry of `module` holds `expected`'s bits."""
    got = module.state_dict()
    want = expected.state_dict() if isinstance(expected, torch.nn.Module) else expected
    assert list(got) == list(want)
    bad = [k for k in got if not same_bits(got[k], want[k])]
    assert not bad, "tensors differ: %s" % bad[:5]
