"""The README's install command, run verbatim into a fresh venv.

The command is read from README.md (the line of the "Python client" section
that runs `pip install --no-build-isolation ./python`), run by bash in a
temporary directory where ./python is the source tree's python/, with
python3 being WEIGHTD_PYTHON. Then the venv's python must import weightd
from the venv, stubs included. WEIGHTD_VENV_DIR, when set, keeps the venv
there for the client tests (CTest's python_install fixture).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PYTHON = os.environ.get("WEIGHTD_PYTHON", "/usr/bin/python3")


def readme_section():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index("\n## Python client")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def install_command():
    lines = [line.strip() for line in readme_section().splitlines()
             if "pip install --no-build-isolation ./python" in line]
    assert len(lines) == 1, lines
    return lines[0].strip("`")


def test_readme_packages_are_in_install_deps():
    m = re.search(r"apt-get install -y ([a-z0-9 .+\n-]+)", readme_section())
    assert m, "the Python client section names its Debian packages"
    with open(os.path.join(ROOT, "scripts", "install-deps.sh")) as f:
        deps = f.read().split()
    assert set(m.group(1).split()) <= set(deps)


def test_install_command_makes_an_importable_package():
    command = install_command()
    assert command.startswith("python3 -m venv --system-site-packages .venv && ")
    keep = os.environ.get("WEIGHTD_VENV_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        work = keep or tmp
        if keep:
            shutil.rmtree(os.path.join(keep, ".venv"), ignore_errors=True)
            os.makedirs(keep, exist_ok=True)
        link = os.path.join(work, "python")
        if not os.path.lexists(link):
            os.symlink(os.path.join(ROOT, "python"), link)
        # python3 is WEIGHTD_PYTHON's directory's (not, say, a pyenv shim); not
        # a symlink of our own, which the venv would point at after it is gone.
        bindir = os.path.dirname(PYTHON)
        assert os.path.basename(PYTHON) == "python3", "WEIGHTD_PYTHON must be a python3"
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
                   PIP_NO_INDEX="1")
        env.pop("PYTHONPATH", None)
        r = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        venv_python = os.path.join(work, ".venv", "bin", "python")
        # torch is for the calls that make tensors only.
        probe = ("import sys, weightd, weightd.v1.weightd_pb2, weightd._grpc_health.v1.health_pb2; "
                 "assert 'torch' not in sys.modules, 'import weightd imported torch'; "
                 "print(weightd.__file__); print(weightd.Client('localhost:1').options.target)")
        r = subprocess.run([venv_python, "-c", probe], cwd="/", env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        path, target = r.stdout.split()
        assert path.startswith(os.path.join(work, ".venv") + os.sep), path
        assert target == "localhost:1"
        # No stub was written into the source tree.
        assert not os.path.exists(os.path.join(ROOT, "python", "weightd", "v1"))


if __name__ == "__main__":
    sys.exit(subprocess.call([PYTHON, "-m", "pytest", "-q", __file__]))
