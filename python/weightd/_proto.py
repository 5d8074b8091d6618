"""The generated stubs (made at build time by setup.py from proto/)."""
try:
    from weightd.v1 import weightd_pb2 as pb
    from weightd.v1 import weightd_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - only in an unbuilt source tree
    raise ImportError(
        "weightd: the gRPC stubs are missing (%s). They are generated when the package is "
        "built; install it with `pip install --no-build-isolation ./python` rather than "
        "importing python/weightd from the source tree." % e) from e

__all__ = ["pb", "pb_grpc"]
