"""What the client returns: plain Python values (no protobuf, no torch)."""
import collections
import json
from dataclasses import dataclass, field
from typing import List

from google.protobuf import json_format

_STATES = {0: "unknown", 1: "unloaded", 2: "loading", 3: "ready", 4: "failed"}


@dataclass
class ModelVersion:
    version: int
    state: str  # "unloaded", "loading", "ready", "failed"
    reason: str = ""
    format: str = ""
    path: str = ""
    tensor_count: int = 0
    bytes: int = 0
    cache_tier: str = ""
    select: str = ""


@dataclass
class Model:
    name: str
    versions: List[ModelVersion] = field(default_factory=list)  # newest first


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: List[int]
    nbytes: int
    checksum: str  # xxHash64 (seed 0) of the row-major bytes, 16 hex digits; "": not computed


@dataclass
class Manifest:
    model: str
    version: int
    format: str
    select: str
    tensors: List[TensorInfo]
    metadata: dict  # non-tensor leaves (epoch, loss, ...), nested as in the checkpoint


Mismatch = collections.namedtuple("Mismatch", ["key", "source", "source_shape", "target_shape"])
Matched = collections.namedtuple(
    "Matched", ["source", "target", "shape", "source_dtype", "target_dtype", "nbytes"])


@dataclass
class MatchResult:
    """The server's match report (what load_state_dict would do)."""
    version: int
    matched: List[Matched]
    missing_keys: List[str]
    unexpected_keys: List[str]
    mismatched: List[Mismatch]
    inferred_rules: List[str]  # e.g. "strip_prefix:module."
    bytes: int
    ok: bool
    errors: List[str]


class LoadResult(collections.namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])):
    """load_state_dict's result: unpacks and prints like torch's _IncompatibleKeys.

    Also: mismatched (shape mismatches, skipped or not), inferred_rules,
    version, tensors (written), bytes (received), seconds.
    """

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def model_from_proto(m):
    return Model(m.name, [
        ModelVersion(v.version, _STATES.get(v.state, "unknown"), v.reason, v.format, v.path,
                     v.tensor_count, v.bytes, v.cache_tier, v.select) for v in m.versions
    ])


def manifest_from_proto(r):
    metadata = json.loads(json_format.MessageToJson(r.metadata)) if r.HasField("metadata") else {}
    return Manifest(r.model, r.version, r.format, r.select, [
        TensorInfo(t.name, t.dtype, list(t.shape), t.nbytes, t.checksum) for t in r.tensors
    ], metadata)


def match_from_proto(r):
    errors = list(r.errors)
    if not r.ok and not errors:
        errors = ["the server rejected the load"]
    return MatchResult(
        version=r.version,
        matched=[Matched(m.source, m.target, list(m.shape), m.source_dtype, m.target_dtype,
                         m.nbytes) for m in r.matched],
        missing_keys=list(r.missing_keys),
        unexpected_keys=list(r.unexpected_keys),
        mismatched=[Mismatch(m.key, m.source, list(m.source_shape), list(m.target_shape))
                    for m in r.mismatched],
        inferred_rules=list(r.inferred_rules),
        bytes=r.bytes, ok=r.ok, errors=errors)
