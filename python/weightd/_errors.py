"""weightd.Error and its subclasses, one per gRPC status a caller handles.

Every error carries `.code` (a grpc.StatusCode) and `.message` (the server's
text, or the client's own reason). The subclasses also derive from the
builtin exception a Python caller would expect (a failed load is a
RuntimeError, as torch's load_state_dict raises).
"""
import grpc


class Error(Exception):
    """A weightd call failed; `.code` is a grpc.StatusCode."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(Error, LookupError):
    """Unknown model, version or tensor."""

    code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(Error, ValueError):
    """A bad request: a rule, regex, option or dtype the server (or the client) refuses."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(Error, RuntimeError):
    """The server cannot serve it as asked: a load the match report rejects, a broken file."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class LoadError(FailedPrecondition):
    """load_state_dict would fail (strict, size mismatch); nothing was written.

    The message is worded as torch.nn.Module.load_state_dict's RuntimeError;
    `.result` holds the match report (missing_keys, unexpected_keys, ...).
    """

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


class Unavailable(Error, ConnectionError):
    """No server answered (down, still starting, or the model is still loading)."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(Error, IOError):
    """The stream broke its contract: a short tensor, a bad checksum, a corrupt file."""

    code = grpc.StatusCode.DATA_LOSS


_BY_CODE = {cls.code: cls for cls in (NotFound, InvalidArgument, FailedPrecondition,
                                      Unavailable, DataLoss)}


def from_rpc_error(error):
    """The weightd.Error for a grpc.RpcError (generic Error for other codes)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    cls = _BY_CODE.get(code, Error)
    return cls(message or str(code), code)
