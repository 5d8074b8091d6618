"""Cold start (issue 15) in the Python client: manifest(checksums=...) and
checksum trailers. A daemon of its own per test, so "not computed yet" is
true at the start; a scripted gRPC server for streams the real one never
sends (a trailer missing or wrong)."""
from concurrent import futures

import grpc
import pytest
import torch
import xxhash
from conftest import BINARY, needs_binary, tensor_bytes
from weightd_process import WeightdProcess

import weightd
from weightd._proto import pb, pb_grpc


@pytest.fixture
def fresh(repo):
    if not BINARY:
        pytest.skip("needs WEIGHTD_BINARY to start a weightd")
    daemon = WeightdProcess(BINARY, repo)
    with weightd.Client(daemon.address) as c:
        yield c
    assert daemon.stop() == 0


@needs_binary
def test_manifest_checksums_all_known_none(fresh, files):
    want = {k: xxhash.xxh64(tensor_bytes(v)).hexdigest()
            for k, v in torch.load(files["tiny"]).items()}
    none = ["" for _ in want]
    assert [t.checksum for t in fresh.manifest("tiny", checksums="none").tensors] == none
    assert [t.checksum for t in fresh.manifest("tiny", checksums="known").tensors] == none
    assert {t.name: t.checksum for t in fresh.manifest("tiny").tensors} == want  # "all"
    assert {t.name: t.checksum for t in fresh.manifest("tiny", checksums="known").tensors} == want
    with pytest.raises(weightd.InvalidArgument):
        fresh.manifest("tiny", checksums="some")


@needs_binary
def test_a_first_fetch_checks_trailers_and_the_server_remembers_them(fresh, files):
    got = fresh.state_dict("tiny")
    want = torch.load(files["tiny"])
    assert list(got) == list(want)
    for k, v in want.items():
        assert torch.equal(got[k], v), k
    # The fetch hashed what it sent; the manifest knows it now.
    known = {t.name: t.checksum for t in fresh.manifest("tiny", checksums="known").tensors}
    assert known == {k: xxhash.xxh64(tensor_bytes(v)).hexdigest() for k, v in want.items()}


DATA = bytes(range(16))  # one float32 [4]


class Scripted(pb_grpc.WeightServiceServicer):
    def __init__(self, script):
        self.script = script
        self.asked_for_trailer = None

    def Fetch(self, request, context):
        self.asked_for_trailer = request.checksum_trailer
        report = pb.MatchReport(ok=True, bytes=16)
        report.matched.add(source="w", target="w", shape=[4], source_dtype="float32",
                           target_dtype="float32", nbytes=16)
        yield pb.FetchResponse(report=report)
        yield from self.script


def header(checksum):
    return pb.FetchResponse(header=pb.TensorHeader(index=0, name="w", source="w",
                                                   dtype="float32", shape=[4], nbytes=16,
                                                   checksum=checksum))


CHUNK = pb.FetchResponse(chunk=pb.TensorChunk(index=0, offset=0, data=DATA))
RIGHT = xxhash.xxh64(DATA).hexdigest()


def fetch_from(script):
    service = Scripted(script)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_WeightServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with weightd.Client("127.0.0.1:%d" % port) as c:
            return c.state_dict("m"), service
    finally:
        server.stop(None)


def test_trailer_after_the_bytes_is_checked():
    sd, service = fetch_from([header(""), CHUNK, pb.FetchResponse(
        trailer=pb.TensorTrailer(index=0, checksum=RIGHT))])
    assert service.asked_for_trailer
    assert bytes(sd["w"].numpy().tobytes()) == DATA


def test_header_checksums_of_an_older_server_still_work():
    sd, _ = fetch_from([header(RIGHT), CHUNK])
    assert bytes(sd["w"].numpy().tobytes()) == DATA


@pytest.mark.parametrize("script,why", [
    ([header(""), CHUNK], "before the tensor's checksum trailer"),
    ([header(""), CHUNK, header("")], "no checksum trailer followed"),
    ([header(""), CHUNK, pb.FetchResponse(trailer=pb.TensorTrailer(index=0, checksum="0" * 16))],
     "the server's trailer says"),
    ([header(RIGHT), CHUNK, pb.FetchResponse(trailer=pb.TensorTrailer(index=0, checksum=RIGHT))],
     "no tensor awaits"),
])
def test_a_missing_or_wrong_trailer_is_data_loss(script, why):
    with pytest.raises(weightd.DataLoss) as e:
        fetch_from(script)
    assert why in str(e.value)
