// A restricted unpickler for the pickles torch.save writes (protocols 2 and
// 4). It builds a Value tree and never executes, imports or looks up
// anything: every GLOBAL is matched against a fixed allowlist (in the spirit
// of torch.load(weights_only=True)). Outside it, a state-dict pickle is
// refused with an error naming the global; a whole-model pickle
// (torch.save(model)) gets inert records of its objects (see PickleMode).
#ifndef WEIGHTD_CORE_FORMAT_PICKLE_UNPICKLER_H_
#define WEIGHTD_CORE_FORMAT_PICKLE_UNPICKLER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/checkpoint/tensor.h"
#include "core/checkpoint/value.h"

namespace weightd {

// What a persistent id ('storage', <StorageType>, key, location, numel[,
// view_metadata]) asks for. torch.save emits one per storage; several tensors
// may name the same key and must then share one Storage.
struct StorageRequest {
  DType dtype;           // from the storage class, e.g. FloatStorage
  std::string key;       // record name: "0", "1"... (zip) or the legacy root key
  std::string location;  // "cpu", "cuda:0"
  int64_t numel;         // elements of the storage, as saved
  // A torch.UntypedStorage typed by _rebuild_tensor_v3: `dtype` is the
  // tensor's, `numel` counts its elements, and the file counted bytes (the
  // legacy format's per-storage element count is then a byte count).
  bool untyped = false;
};

// Resolves a StorageRequest to the storage bytes. Called once per
// persistent id occurrence; the caller deduplicates by key. The returned
// Storage may be filled in later (legacy files store data after the pickle)
// as long as it is before tensors are validated.
using StorageLoader =
    std::function<absl::StatusOr<std::shared_ptr<const Storage>>(const StorageRequest&)>;

struct UnpicklerLimits {
  size_t max_depth = 1000;          // nesting of containers
  size_t max_stack = 1 << 20;       // values on the stack
  size_t max_memo = 1 << 22;        // memo entries
  size_t max_string = size_t{1} << 30;  // bytes of one string/bytes value
  // Nodes of the tree with shared subtrees counted once per reference, so
  // that code walking the result (or hashing a tuple key) stays bounded
  // even when memo references share subtrees exponentially. Code that walks
  // the tree builds something per node (metadata JSON: ~70 bytes a node), so
  // this also bounds its memory: 4M nodes stay well under 1 GiB.
  size_t max_tree_nodes = size_t{1} << 22;
  // Text the tree expands to, shared subtrees counted once per reference:
  // every str value plus, for every node, the dotted key path leading to it
  // from its container. That is what metadata JSON, flattened tensor names
  // and error paths copy, so a small pickle that references one long string
  // thousands of times, or nests long keys deeply, cannot make them
  // allocate gigabytes.
  size_t max_tree_text = size_t{256} << 20;
};

// What the unpickler makes of a global outside the allowlist.
enum class PickleMode {
  // Refuses it, naming it (state dicts, training checkpoints).
  kData,
  // Whole-model pickles: the global becomes an inert Value::Global. Plain
  // instantiation as pickle does it for any object (NEWOBJ, or REDUCE of
  // copyreg._reconstructor(cls, object, None)) makes an inert
  // Value::Object; BUILD gives it its __dict__ (a dict; any other state is refused). Every other
  // call of it (REDUCE, INST, OBJ, NEWOBJ_EX) is refused naming it, except
  // REDUCE of functools.partial (torchvision's norm_layer), which is
  // recorded as an object, not made. SETITEM(S), APPEND(S) on an object
  // (which would run its code) are refused.
  kWholeModel,
  // kData; if that refuses a global, kWholeModel, whose result is kept only
  // if it holds an nn.Module-like object (IsModule, module_tree.h). Else the
  // kData error stands, so data files fail exactly as under kData.
  kAuto,
};

// Unpickles `bytes`. `what` names the source in error messages
// ("model.pt: archive/data.pkl"). On success `*consumed` (if not null) is the
// number of bytes read up to and including STOP (legacy files chain pickles).
// Tensors built here are NOT validated against their storage (the storage
// may not be filled yet); callers run ValidateTensor when storages are ready.
// Errors: DataLoss for malformed pickles; FailedPrecondition for a global or
// construct outside the allowlist.
absl::StatusOr<ValuePtr> Unpickle(absl::Span<const uint8_t> bytes, absl::string_view what,
                                  const StorageLoader& load_storage,
                                  const UnpicklerLimits& limits = {},
                                  size_t* consumed = nullptr,
                                  PickleMode mode = PickleMode::kAuto);

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_PICKLE_UNPICKLER_H_
