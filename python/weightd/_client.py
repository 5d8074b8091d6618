"""weightd.Client: channel, options and the calls that need no torch."""
import os
from dataclasses import dataclass

import grpc

from weightd import _rules, _types
from weightd._errors import InvalidArgument
from weightd._fetch import with_retries
from weightd._proto import pb, pb_grpc


@dataclass
class ClientOptions:
    """As the C++ ClientOptions (client/client_core.h); seconds for durations."""
    target: str = "localhost:50051"
    load_balancing_policy: str = "round_robin"
    max_receive_bytes: int = 16 << 20
    timeout: float = 600.0  # of each unary call and of each whole Fetch stream
    # One connection attempt (TCP connect + the server's HTTP/2 SETTINGS).
    connect_timeout: float = 20.0
    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0
    token: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""


# Trailing metadata accepted from the server (see Client.__init__).
max_metadata_bytes = 4 << 20


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class Client:
    """A client of one weightd server (or a dns:/// set of replicas).

        c = weightd.Client("localhost:50051")        # also "dns:///svc:50051", "unix:/path"
        c = weightd.Client("host:50051", token="...", tls_ca="ca.pem")

    token: sent as "authorization: Bearer TOKEN" on every call, also over
    plaintext (default: the WEIGHTD_TOKEN environment variable). tls_ca: PEM
    of the CA that signed the server's certificate (TLS); tls_cert/tls_key:
    the client's certificate for mTLS. Other keywords: see ClientOptions.

    Thread-safe: one Client (one gRPC channel) may serve many threads. The
    channel connects lazily; UNAVAILABLE is retried with exponential backoff
    before anything of an answer has arrived.
    """

    def __init__(self, target="localhost:50051", **options):
        unknown = set(options) - set(ClientOptions.__dataclass_fields__)
        if unknown:
            raise TypeError("Client: unknown option(s) %s" % ", ".join(sorted(unknown)))
        self.options = ClientOptions(target=target, **options)
        o = self.options
        if not o.token:
            o.token = os.environ.get("WEIGHTD_TOKEN", "")
        self._metadata = (("authorization", "Bearer " + o.token),) if o.token else None
        backoff_ms = max(int(o.initial_backoff * 1000), 1)
        args = [
            ("grpc.lb_policy_name", o.load_balancing_policy),
            ("grpc.max_receive_message_length", o.max_receive_bytes),
            # A rejected load ends FAILED_PRECONDITION with every error in the
            # status message (all missing and unexpected keys: tens of KiB for
            # an architecture mix-up), past gRPC's 8 KiB metadata default,
            # which then fails the call before the report arrives.
            ("grpc.max_metadata_size", max_metadata_bytes),
            # gRPC's own reconnect backoff starts at 1 s; keep it in step with
            # ours so a retry after a refused connection really reconnects.
            ("grpc.initial_reconnect_backoff_ms", backoff_ms),
            # gRPC reads this one as the least time a connection attempt
            # gets, not as a backoff: at 100 ms a herd of clients starting
            # on a busy node had attempts cut off ("tcp handshaker shutdown",
            # issue 15). See client/client_core.cc.
            ("grpc.min_reconnect_backoff_ms", max(int(o.connect_timeout * 1000), 100)),
            ("grpc.max_reconnect_backoff_ms", max(int(o.max_backoff * 1000), 1)),
        ]
        if o.tls_ca or o.tls_cert:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(o.tls_ca) if o.tls_ca else None,
                private_key=_read(o.tls_key) if o.tls_key else None,
                certificate_chain=_read(o.tls_cert) if o.tls_cert else None)
            self._channel = grpc.secure_channel(o.target, creds, options=args)
        else:
            self._channel = grpc.insecure_channel(o.target, options=args)
        self._stub = pb_grpc.WeightServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _unary(self, method, request):
        def attempt(state):
            return method(request, timeout=self.options.timeout, metadata=self._metadata)
        return with_retries(self.options, attempt)

    def list_models(self):
        """[weightd.Model]: every model of the repository with its versions."""
        r = self._unary(self._stub.ListModels, pb.ListModelsRequest())
        return [_types.model_from_proto(m) for m in r.models]

    def manifest(self, model, version=0, select="", checksums="all"):
        """weightd.Manifest: tensors (name, dtype, shape, nbytes, checksum) and metadata.

        checksums: "all" (the server hashes every tensor not hashed yet:
        seconds for a large model), "known" (only those it already has) or
        "none"; a checksum left out is "".
        """
        which = {"all": pb.CHECKSUMS_ALL, "known": pb.CHECKSUMS_KNOWN,
                 "none": pb.CHECKSUMS_NONE}.get(checksums)
        if which is None:
            raise InvalidArgument("checksums=%r: expected 'all', 'known' or 'none'" % (checksums,))
        r = self._unary(self._stub.GetManifest,
                        pb.GetManifestRequest(model=model, version=version, select=select,
                                              checksums=which))
        return _types.manifest_from_proto(r)

    def match(self, target, model, *, version=0, select="", strict=True,
              on_shape_mismatch="error", allow_empty=False, **rules):
        """Dry run of load_state_dict(target, model, ...): weightd.MatchResult.

        target: a torch.nn.Module, a mapping name -> tensor, or a list of
        (name, dtype, shape). Rules: see weightd._rules (strip_prefix=...,
        auto_prefix=True, ...). No tensor bytes move.
        """
        request = pb.MatchRequest(
            model=model, version=version, select=select,
            rules=rule_set(rules),
            options=_rules.match_options(strict, on_shape_mismatch, allow_empty))
        request.target.extend(target_tensors(target))
        return _types.match_from_proto(self._unary(self._stub.Match, request))

    def health(self, service=""):
        """The health status name ("SERVING", "NOT_SERVING", "SERVICE_UNKNOWN").

        service: "" (the server), "weightd.v1.WeightService/MODEL" (one model).
        The health stubs are imported here only: their proto package is
        grpc.health.v1, which grpcio-health-checking also registers.
        """
        from weightd._grpc_health.v1 import health_pb2, health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(self._channel)
        r = self._unary(stub.Check, health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def state_dict(self, model, map_location=None, *, select="", version=0, dtype=None,
                   keys=None, progress=False, **rules):
        """The model's state dict as torch.load gives it (an OrderedDict of tensors).

        See weightd._torch.state_dict.
        """
        from weightd import _torch
        return _torch.state_dict(self, model, map_location, select=select, version=version,
                                 dtype=dtype, keys=keys, progress=progress, **rules)

    def load_state_dict(self, module, model, *, strict=True, on_shape_mismatch="error",
                        allow_empty=False, select="", version=0, dtype=None, progress=False,
                        **rules):
        """Loads `model` into `module` in place, like module.load_state_dict().

        See weightd._torch.load_state_dict.
        """
        from weightd import _torch
        return _torch.load_state_dict(self, module, model, strict=strict,
                                      on_shape_mismatch=on_shape_mismatch,
                                      allow_empty=allow_empty, select=select, version=version,
                                      dtype=dtype, progress=progress, **rules)


def rule_set(rules):
    unknown = set(rules) - set(_rules.RULE_KEYS)
    if unknown:
        raise TypeError("unknown keyword argument(s) %s (rules are %s)" %
                        (", ".join(sorted(unknown)), ", ".join(_rules.RULE_KEYS)))
    return _rules.rule_set(**rules)


def target_tensors(target):
    """[weightd.v1.TargetTensor] from a module, a mapping of tensors, or (name, dtype, shape)s."""
    if hasattr(target, "state_dict") and callable(target.state_dict):
        from weightd import _torch
        return [pb.TargetTensor(name=n, dtype=_torch.dtype_name(t.dtype), shape=list(t.shape))
                for n, t in _torch.module_targets(target).items()]
    if hasattr(target, "items"):
        from weightd import _torch
        return [pb.TargetTensor(name=n, dtype=_torch.dtype_name(t.dtype), shape=list(t.shape))
                for n, t in target.items()]
    out = []
    for entry in target:
        try:
            name, dtype, shape = entry
        except (TypeError, ValueError):
            raise InvalidArgument("target entries are (name, dtype, shape), got %r" % (entry,))
        out.append(pb.TargetTensor(name=name, dtype=str(dtype), shape=list(shape)))
    return out
