"""grpc.health.v1.Health/Check against a weightd, with grpcio and no stubs.

    python3 tests/data/health_check.py HOST:PORT [SERVICE]

Prints the status name (SERVING, NOT_SERVING, ...) and exits 0 when SERVING.
The messages are encoded by hand: HealthCheckRequest is field 1 (service,
string), HealthCheckResponse field 1 (status, enum), as in health.proto.
"""
import sys

import grpc

STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def encode_request(service: str) -> bytes:
    raw = service.encode()
    if not raw:
        return b""
    assert len(raw) < 128, "service name too long for this one-byte length"
    return b"\x0a" + bytes([len(raw)]) + raw


def decode_status(raw: bytes) -> int:
    if raw == b"":
        return 0
    if len(raw) != 2 or raw[0] != 0x08:
        raise ValueError(f"unexpected HealthCheckResponse bytes {raw!r}")
    return raw[1]


def main() -> int:
    target = sys.argv[1]
    service = sys.argv[2] if len(sys.argv) > 2 else ""
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        status = decode_status(check(encode_request(service), timeout=10))
    print(STATUS.get(status, str(status)))
    return 0 if status == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
