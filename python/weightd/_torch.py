"""The functions that make or fill tensors; the only module that imports torch."""
import collections
import time

import torch

from weightd import _rules, _types
from weightd._client import rule_set
from weightd._errors import DataLoss, InvalidArgument, LoadError
from weightd._fetch import DTYPE_SIZES, run_fetch
from weightd._progress import make_progress
from weightd._proto import pb

_DTYPES = {
    "bool": torch.bool, "uint8": torch.uint8, "int8": torch.int8, "int16": torch.int16,
    "int32": torch.int32, "int64": torch.int64, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
    "complex64": torch.complex64, "complex128": torch.complex128,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def dtype_name(dtype):
    """weightd's (PyTorch's) name of a torch.dtype; InvalidArgument for others."""
    if isinstance(dtype, str):
        bare = dtype[6:] if dtype.startswith("torch.") else dtype
        if bare in _DTYPES:
            return bare
        dtype = getattr(torch, bare, dtype)
    try:
        return _NAMES[dtype]
    except (KeyError, TypeError):
        raise InvalidArgument("dtype %s is not one weightd serves (%s)" %
                              (dtype, ", ".join(_DTYPES))) from None


def module_targets(module):
    """What load_state_dict fills: state_dict(keep_vars=True), in its order.

    That is the parameters and *persistent* buffers, module by module, the
    order in which PyTorch reports missing keys.
    """
    return collections.OrderedDict(
        (k, v) for k, v in module.state_dict(keep_vars=True).items() if isinstance(v, torch.Tensor))


def _tensor(header, buffer):
    """A tensor over the assembled bytes: no copy (torch.frombuffer)."""
    dtype = _DTYPES[header.dtype]
    shape = list(header.shape)
    if header.nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(buffer, dtype=dtype).view(shape)


def _transfer_total(report, cast):
    total = 0
    for m in report.matched:
        src = DTYPE_SIZES.get(m.source_dtype, 0)
        size = DTYPE_SIZES.get(cast, src) if cast else src
        total += m.nbytes // src * size if src else 0
    return total


def _torch_size(shape):
    return str(torch.Size(shape))


def load_error_message(module, result, strict, on_shape_mismatch):
    """load_state_dict's RuntimeError text for a report the server rejected."""
    msgs = []
    if strict and result.missing_keys:
        msgs.append("Missing key(s) in state_dict: {}. ".format(
            ", ".join('"{}"'.format(k) for k in result.missing_keys)))
    if strict and result.unexpected_keys:
        msgs.append("Unexpected key(s) in state_dict: {}. ".format(
            ", ".join('"{}"'.format(k) for k in result.unexpected_keys)))
    if on_shape_mismatch == "error":
        for m in result.mismatched:
            msgs.append("size mismatch for {}: copying a param with shape {} from checkpoint, "
                        "the shape in current model is {}.".format(
                            m.key, _torch_size(m.source_shape), _torch_size(m.target_shape)))
    # Errors of the server's own (an empty match, ...), after PyTorch's.
    known = ("Missing key(s) in state_dict", "Unexpected key(s) in state_dict", "size mismatch")
    msgs.extend(e for e in result.errors if not e.startswith(known))
    return "Error(s) in loading state_dict for {}:\n\t{}".format(
        type(module).__name__, "\n\t".join(msgs))


class _LoadSink:
    def __init__(self, module, targets, cast, strict, on_shape_mismatch, progress):
        self.module = module
        self.targets = targets
        self.cast = cast
        self.strict = strict
        self.on_shape_mismatch = on_shape_mismatch
        self.progress = progress
        self.result = None
        self.written = 0
        self.received = 0
        self.total = 0

    def on_report(self, report):
        self.result = _types.match_from_proto(report)
        self.total = _transfer_total(report, self.cast)
        self.written = self.received = 0
        if not report.ok:
            # Before any byte is written: a load that fails changes nothing.
            raise LoadError(load_error_message(self.module, self.result, self.strict,
                                               self.on_shape_mismatch), self.result)

    def on_bytes(self, n):
        self.received += n
        if self.progress:
            self.progress(self.received, self.total)

    def on_tensor(self, header, buffer):
        dest = self.targets.get(header.name)
        if dest is None:
            raise DataLoss("the server sent tensor %s, which the module lacks" % header.name)
        if list(dest.shape) != list(header.shape):
            raise DataLoss("the server sent %s with shape %s, the module has %s" %
                           (header.name, list(header.shape), list(dest.shape)))
        with torch.no_grad():
            dest.copy_(_tensor(header, buffer))
        self.written += 1


def load_state_dict(client, module, model, *, strict=True, on_shape_mismatch="error",
                    allow_empty=False, select="", version=0, dtype=None, progress=False,
                    **rules):
    """Loads `model` from the server into `module`'s parameters and buffers.

    Like module.load_state_dict(torch.load(f), strict=strict), the match
    computed by the server: returns a LoadResult (missing_keys,
    unexpected_keys as torch's _IncompatibleKeys; plus mismatched,
    inferred_rules, version, tensors, bytes, seconds). A load torch would
    refuse (strict, size mismatch with on_shape_mismatch="error") raises
    weightd.LoadError, a RuntimeError worded as torch's, and writes nothing.

    Each tensor is written in place under torch.no_grad() on its own device,
    after its bytes arrived and their checksum matched. dtype: what the server
    sends (e.g. torch.bfloat16 to halve the bytes; converted into each
    parameter's dtype as copy_ does); default: the module's dtype when all
    its tensors share one, else as stored. progress: True for a bar on a
    terminal's stderr, or a callable(bytes, total).
    """
    start = time.monotonic()
    targets = module_targets(module)
    if not targets:
        # A Fetch without a target means "every tensor": ask for the report only.
        r = client.match([], model, version=version, select=select, strict=strict,
                         on_shape_mismatch=on_shape_mismatch, allow_empty=allow_empty, **rules)
        if not r.ok:
            raise LoadError(load_error_message(module, r, strict, on_shape_mismatch), r)
        return _result(r, 0, 0, start)
    request = pb.FetchRequest(
        model=model, version=version, select=select, rules=rule_set(rules),
        options=_rules.match_options(strict, on_shape_mismatch, allow_empty),
        max_receive_bytes=client.options.max_receive_bytes)
    for name, t in targets.items():
        request.target.add(name=name, dtype=dtype_name(t.dtype), shape=list(t.shape))
    # Casting on the server saves a pass here, but applies to every tensor of
    # the stream: only when one dtype fits all targets (as the C++ client).
    cast = dtype_name(dtype) if dtype is not None else None
    if cast is None:
        names = {t.dtype for t in request.target}
        cast = names.pop() if len(names) == 1 else None
    if cast:
        request.cast_dtype = cast
    sink = _LoadSink(module, targets, cast, strict, on_shape_mismatch, make_progress(progress))
    try:
        run_fetch(client, request, sink)
    finally:
        if sink.progress is not None and hasattr(sink.progress, "close"):
            sink.progress.close()
    if sink.written != len(sink.result.matched):
        raise DataLoss("the stream ended after %d of %d tensors" %
                       (sink.written, len(sink.result.matched)))
    return _result(sink.result, sink.written, sink.received, start)


def _result(r, tensors, received, start):
    out = _types.LoadResult(r.missing_keys, r.unexpected_keys)
    out.mismatched = r.mismatched
    out.inferred_rules = r.inferred_rules
    out.version = r.version
    out.tensors = tensors
    out.bytes = received
    out.seconds = time.monotonic() - start
    return out


class _DictSink:
    def __init__(self, cast, progress):
        self.cast = cast
        self.progress = progress
        self.out = collections.OrderedDict()
        self.report = None
        self.received = 0
        self.total = 0

    def on_report(self, report):
        self.report = report
        self.out.clear()
        self.received = 0
        self.total = _transfer_total(report, self.cast)

    def on_bytes(self, n):
        self.received += n
        if self.progress:
            self.progress(self.received, self.total)

    def on_tensor(self, header, buffer):
        self.out[header.name] = _tensor(header, buffer)


def _device(map_location):
    if map_location is None or isinstance(map_location, torch.device):
        return map_location
    if isinstance(map_location, str):
        return torch.device(map_location)
    raise InvalidArgument("map_location: a device or its name (\"cpu\", \"cuda:0\"), got %r" %
                          (map_location,))


def state_dict(client, model, map_location=None, *, select="", version=0, dtype=None, keys=None,
               progress=False, **rules):
    """The model's state dict, like torch.load(f, map_location=...)[select].

    An OrderedDict name -> tensor in checkpoint order, each tensor contiguous
    over its own received buffer (torch.frombuffer: no copy on the CPU; one
    copy to reach map_location's device). dtype: cast on the server. keys:
    only these source names. Rules: include/exclude pick sources,
    strip_prefix/add_prefix/rename rename them (the server applies them and
    must agree, see _rules.local_names); auto_prefix and ignore_* need a
    target and are refused here.
    """
    device = _device(map_location)
    rs = rule_set(rules)
    if rs.auto_prefix or rs.ignore_missing or rs.ignore_unexpected:
        raise InvalidArgument("state_dict takes include, exclude and renaming rules only "
                              "(no auto_prefix, ignore_missing, ignore_unexpected)")
    request = pb.FetchRequest(model=model, version=version, select=select,
                              max_receive_bytes=client.options.max_receive_bytes)
    if dtype is not None:
        request.cast_dtype = dtype_name(dtype)
    if keys is not None and (rs.include or rs.exclude or rs.rules):
        raise InvalidArgument("state_dict: give keys or rules, not both")
    if keys is not None:
        request.keys.extend([keys] if isinstance(keys, str) else keys)
    elif rs.include or rs.exclude or rs.rules:
        # The server renames only towards a target: propose one from the
        # manifest (pinned to its version), and let a strict match confirm it.
        manifest = client.manifest(model, version, select, checksums="none")
        request.version = manifest.version
        pairs = _rules.local_names([t.name for t in manifest.tensors], rs)
        if not pairs:
            return collections.OrderedDict()
        by_source = {t.name: t for t in manifest.tensors}
        seen = {}
        for source, target in pairs:
            if target in seen:
                raise InvalidArgument("the rules rename two tensors to %s (%s and %s)" %
                                      (target, seen[target], source))
            seen[target] = source
            t = by_source[source]
            request.target.add(name=target, dtype=t.dtype, shape=t.shape)
        request.rules.CopyFrom(rs)
        request.options.CopyFrom(_rules.match_options(strict=True))
    sink = _DictSink(request.cast_dtype, make_progress(progress))
    try:
        run_fetch(client, request, sink)
    finally:
        if sink.progress is not None and hasattr(sink.progress, "close"):
            sink.progress.close()
    out = sink.out
    if device is not None and device.type != "cpu":
        out = collections.OrderedDict((k, v.to(device)) for k, v in out.items())
    return out


