"""Reading one Fetch stream, as client/fetch_stream.cc does.

The stream is one report, then per tensor a header and its chunks in order.
Each tensor's chunks are assembled into one bytearray (the only copy of the
bytes on this side), its xxHash64 checked against the header's checksum or,
when that is empty, the TensorTrailer after the chunks, and only then
handed on. UNAVAILABLE is retried with backoff while nothing has arrived.
"""
import time

import grpc
import xxhash

from weightd._errors import DataLoss, Error, from_rpc_error

DTYPE_SIZES = {
    "bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "float16": 2,
    "bfloat16": 2, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16,
}


def with_retries(options, attempt):
    """Calls attempt(state) until it succeeds or fails other than retryably.

    attempt sets state["received"] once anything arrived: from then on an
    UNAVAILABLE is final (a half-received load must not start over silently).
    """
    backoff = options.initial_backoff
    for i in range(1, options.max_attempts + 1):
        state = {"received": False}
        try:
            return attempt(state)
        except grpc.RpcError as e:
            if (e.code() != grpc.StatusCode.UNAVAILABLE or state["received"] or
                    i >= options.max_attempts):
                raise from_rpc_error(e) from None
        time.sleep(backoff)
        backoff = min(options.max_backoff, backoff * options.backoff_multiplier)
    raise AssertionError("unreachable")


class _Stream:
    """One attempt: checks order, sizes and checksums; calls the sink."""

    def __init__(self, sink):
        self.sink = sink
        self.report_seen = False
        self.header = None
        self.buffer = None
        self.received = 0
        self.hash = None
        self.got = None  # all bytes in, hash awaiting the trailer
        self.next_index = 0

    def broken(self, why):
        at = " at tensor %s" % self.header.name if self.header is not None else ""
        return DataLoss("Fetch stream broken%s: %s" % (at, why))

    def handle(self, response):
        item = response.WhichOneof("item")
        if not self.report_seen:
            if item != "report":
                raise self.broken("the stream does not start with a report")
            self.report_seen = True
            self.sink.on_report(response.report)
        elif item == "trailer":
            self.trailer(response.trailer)
        elif self.got is not None:
            raise self.broken("its header had no checksum and no checksum trailer followed "
                              "its data")
        elif item == "header":
            if self.header is not None:
                raise self.broken("a tensor header arrived before the previous tensor's end")
            self.begin(response.header)
        elif item == "chunk":
            self.chunk(response.chunk)
        else:
            raise self.broken("unexpected message in the stream")

    def begin(self, header):
        if header.index != self.next_index:
            self.header = header
            raise self.broken("tensor index %d, expected %d" % (header.index, self.next_index))
        self.header = header
        size = DTYPE_SIZES.get(header.dtype)
        if size is None:
            raise self.broken("unknown dtype \"%s\"" % header.dtype)
        numel = 1
        for d in header.shape:
            if d < 0:
                raise self.broken("negative dimension in shape %s" % list(header.shape))
            numel *= d
        if numel * size != header.nbytes:
            raise self.broken("nbytes %d does not fit shape %s of %s" %
                              (header.nbytes, list(header.shape), header.dtype))
        self.buffer = bytearray(header.nbytes)
        self.received = 0
        self.hash = xxhash.xxh64(seed=0)
        if header.nbytes == 0:
            self.finish_tensor()

    def chunk(self, chunk):
        if self.header is None or chunk.index != self.header.index:
            raise self.broken("chunk of tensor %d out of place" % chunk.index)
        data = chunk.data
        if chunk.offset != self.received or len(data) > self.header.nbytes - self.received:
            raise self.broken("chunk at offset %d of %d bytes; %d of %d bytes received" %
                              (chunk.offset, len(data), self.received, self.header.nbytes))
        self.buffer[self.received:self.received + len(data)] = data
        self.hash.update(data)
        self.received += len(data)
        self.sink.on_bytes(len(data))
        if self.received == self.header.nbytes:
            self.finish_tensor()

    def finish_tensor(self):
        got = self.hash.hexdigest()
        if not self.header.checksum:
            # checksum_trailer: the checksum follows the data.
            self.got = got
            return
        self.verified(got, self.header.checksum, "the server says")

    def trailer(self, trailer):
        if self.got is None:
            raise self.broken("a checksum trailer that no tensor awaits")
        if trailer.index != self.header.index:
            raise self.broken("checksum trailer of tensor %d, expected %d" %
                              (trailer.index, self.header.index))
        got, self.got = self.got, None
        self.verified(got, trailer.checksum, "the server's trailer says")

    def verified(self, got, want, who):
        if got != want:
            raise DataLoss("tensor %s: checksum mismatch (received bytes hash to %s, %s %s)" %
                           (self.header.name, got, who, want))
        header, buffer = self.header, self.buffer
        self.header = self.buffer = self.hash = None
        self.next_index += 1
        self.sink.on_tensor(header, buffer)

    def finish(self):
        if not self.report_seen:
            raise self.broken("the stream ended before its report")
        if self.got is not None:
            raise self.broken("the stream ended before the tensor's checksum trailer")
        if self.header is not None:
            raise self.broken("only %d of %d bytes arrived" % (self.received, self.header.nbytes))


def run_fetch(client, request, sink):
    """Runs `request` to its end into `sink` (on_report, on_bytes, on_tensor).

    A failed stream raises the weightd.Error of its status; the sink's
    on_report has then seen the report if the server sent one first (a load
    the report rejects ends FAILED_PRECONDITION right after it).
    """
    options = client.options
    # Checksums may follow the data (a TensorTrailer), so the first byte does
    # not wait for the server to hash a tensor; older servers ignore this.
    request.checksum_trailer = True

    def attempt(state):
        call = client._stub.Fetch(request, timeout=options.timeout, metadata=client._metadata)
        stream = _Stream(sink)
        try:
            for response in call:
                state["received"] = True
                stream.handle(response)
        except Error:
            call.cancel()
            raise
        stream.finish()

    with_retries(options, attempt)
