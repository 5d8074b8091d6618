"""weightd: the Python client of the weightd PyTorch weight server.

    import weightd
    c = weightd.Client("localhost:50051")
    r = c.load_state_dict(model, "resnet50", strip_prefix="module.",
                          on_shape_mismatch="skip", strict=False)
    r.missing_keys, r.unexpected_keys, r.mismatched, r.version, r.bytes, r.seconds
    sd = c.state_dict("resnet50", map_location="cuda:0")

The server computes every match (the C++ client's and weightctl's
semantics); torch is imported only by the calls that make tensors.
"""
from weightd._client import Client, ClientOptions
from weightd._errors import (DataLoss, Error, FailedPrecondition, InvalidArgument, LoadError,
                             NotFound, Unavailable)
from weightd._types import (LoadResult, Manifest, Matched, MatchResult, Mismatch, Model,
                            ModelVersion, TensorInfo)

__version__ = "0.2.0"

__all__ = [
    "Client", "ClientOptions", "DataLoss", "Error", "FailedPrecondition", "InvalidArgument",
    "LoadError", "LoadResult", "Manifest", "Matched", "MatchResult", "Mismatch", "Model",
    "ModelVersion", "NotFound", "TensorInfo", "Unavailable",
]
