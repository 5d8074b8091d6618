"""Client calls without tensors, errors, targets and credentials."""
import os
import socket
import subprocess
import tempfile
import threading
import time

import grpc
import pytest
import torch
import xxhash
from conftest import BINARY, needs_binary, tensor_bytes
from weightd_process import WeightdProcess

import weightd


def test_list_models(client):
    models = {m.name: m for m in client.list_models()}
    assert {"resnet18", "resnet18_ddp", "mobilenet_v2", "squeezenet", "tiny"} <= set(models)
    assert [v.version for v in models["mobilenet_v2"].versions] == [2, 1]
    assert models["resnet18"].versions[0].path == "resnet18/1/model.pt"


def test_manifest_matches_torch_load(client, files):
    m = client.manifest("squeezenet", select="ema")
    want = torch.load(files["squeezenet"])
    assert (m.model, m.version, m.format, m.select) == ("squeezenet", 1, "torch_zip", "ema")
    assert [t.name for t in m.tensors] == list(want["ema"])
    for t in m.tensors:
        w = want["ema"][t.name]
        assert (t.dtype, t.shape, t.nbytes) == (str(w.dtype)[6:], list(w.shape),
                                                w.numel() * w.element_size())
        assert t.checksum == xxhash.xxh64(tensor_bytes(w)).hexdigest()
    assert m.metadata["epoch"] == 3  # a Struct: numbers are doubles


def test_errors_carry_the_code_and_message(client):
    with pytest.raises(weightd.NotFound) as e:
        client.manifest("no_such_model")
    assert isinstance(e.value, LookupError) and e.value.code == grpc.StatusCode.NOT_FOUND
    assert "no_such_model" in e.value.message
    with pytest.raises(weightd.NotFound):
        client.manifest("resnet18", version=9)
    with pytest.raises(weightd.InvalidArgument) as e:
        client.match([("x", "float32", [1])], "resnet18", rename=[("(", "x")])
    assert isinstance(e.value, ValueError) and e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(weightd.InvalidArgument):
        client.match([], "resnet18", on_shape_mismatch="ignore")
    with pytest.raises(TypeError):
        client.match([], "resnet18", strip="module.")


def test_match_takes_entries_and_mappings(client, files):
    sd = torch.load(files["resnet18"])
    m = client.match(sd, "resnet18")
    assert m.ok and len(m.matched) == len(sd) and m.missing_keys == m.unexpected_keys == []
    m = client.match([("fc.weight", "float32", [1000, 512])], "resnet18", strict=False)
    assert [x.target for x in m.matched] == ["fc.weight"] and len(m.unexpected_keys) == len(sd) - 1


def test_unavailable_after_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    c = weightd.Client("127.0.0.1:%d" % port, max_attempts=2, initial_backoff=0.05)
    start = time.monotonic()
    with pytest.raises(weightd.Unavailable) as e:
        c.list_models()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start >= 0.05


def test_dns_target(address):
    host, port = address.rsplit(":", 1)
    with weightd.Client("dns:///localhost:%s" % port) as c:
        assert "resnet18" in [m.name for m in c.list_models()]


def test_health(client):
    assert client.health() == "SERVING"
    assert client.health("weightd.v1.WeightService/resnet18") == "SERVING"


@needs_binary
def test_retries_until_the_server_is_up(repo):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = {}

    def call():
        c = weightd.Client("127.0.0.1:%d" % port, max_attempts=150, initial_backoff=0.1,
                           max_backoff=0.2)
        try:
            result["sd"] = c.state_dict("tiny")
        except weightd.Error as e:
            result["error"] = e

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)  # the first attempts are refused
    daemon = WeightdProcess(BINARY, repo, "--listen", "127.0.0.1:%d" % port)
    try:
        thread.join(60)
        assert "f32" in result.get("sd", {}), result
    finally:
        daemon.stop()


@needs_binary
def test_unix_socket_target(repo):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "weightd.sock")
        proc = subprocess.Popen([BINARY, "--repository", repo, "--listen", "unix:" + path,
                                 "--minloglevel", "2"], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().startswith("listening on ")
            with weightd.Client("unix:" + path) as c:
                assert list(c.state_dict("tiny", keys=["i64"])["i64"]) == list(range(7))
        finally:
            proc.terminate()
            proc.wait(60)
            proc.stdout.close()


MAKE_CERTS = r"""
set -e
K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=weightd-test-ca
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for n in server client; do
  openssl req $K -keyout $n.key -out $n.csr -subj /CN=weightd-$n
  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out $n.pem -days 2 -extfile $n.ext
done
"""


@pytest.fixture(scope="module")
def secure_daemon(repo):
    if not BINARY:
        pytest.skip("needs WEIGHTD_BINARY to start a weightd")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["bash", "-c", MAKE_CERTS], cwd=tmp, check=True, capture_output=True,
                       timeout=60)
        with open(os.path.join(tmp, "tokens"), "w") as f:
            f.write("read-token-0123 read\n")
        p = lambda n: os.path.join(tmp, n)  # noqa: E731
        daemon = WeightdProcess(BINARY, repo, "--tls_cert", p("server.pem"), "--tls_key",
                                p("server.key"), "--tls_client_ca", p("ca.pem"),
                                "--auth_tokens_file", p("tokens"))
        yield daemon, p
        daemon.stop()


def test_mtls_and_token(secure_daemon, monkeypatch):
    daemon, p = secure_daemon
    monkeypatch.delenv("WEIGHTD_TOKEN", raising=False)
    target = "localhost:" + daemon.port
    tls = dict(tls_ca=p("ca.pem"), tls_cert=p("client.pem"), tls_key=p("client.key"))
    with weightd.Client(target, token="read-token-0123", **tls) as c:
        assert "tiny" in [m.name for m in c.list_models()]
        assert c.state_dict("tiny", keys=["b"])["b"].tolist() == [True, False]
    with weightd.Client(target, **tls) as c:
        with pytest.raises(weightd.Error) as e:
            c.list_models()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    monkeypatch.setenv("WEIGHTD_TOKEN", "read-token-0123")
    with weightd.Client(target, **tls) as c:
        assert c.list_models()
    with weightd.Client(target, token="read-token-0123", tls_ca=p("ca.pem")) as c:
        with pytest.raises(weightd.Error):  # the server wants a client certificate
            c.list_models()
