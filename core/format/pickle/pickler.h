// Writes the pickle torch.save(state_dict) writes, so that files we produce
// load with Python's torch.load(..., weights_only=True).
#ifndef WEIGHTD_CORE_FORMAT_PICKLE_PICKLER_H_
#define WEIGHTD_CORE_FORMAT_PICKLE_PICKLER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/checkpoint/dtype.h"

namespace weightd {

// One entry of a state dict, as _rebuild_tensor_v2 describes it. The storage
// bytes themselves are written by the container (zip record data/<key>).
struct PickleTensor {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  int64_t storage_offset = 0;    // in elements
  std::string storage_key;       // "0", "1"...: record data/<key>
  int64_t storage_numel = 0;     // elements in the storage
  bool requires_grad = false;
};

// Protocol-2 pickle of a collections.OrderedDict name -> tensor, as
// torch.save(state_dict) writes it: torch._utils._rebuild_tensor_v2 with
// persistent ids ('storage', torch.<Type>Storage, key, 'cpu', numel); a dtype
// with no <Type>Storage class (float8_*, uint16/32/64) gets what torch >= 2.1
// writes: _rebuild_tensor_v3 over ('storage', torch.storage.UntypedStorage,
// key, 'cpu', nbytes) with the dtype object as its 7th argument.
// Storages with the same key are memoized so they are shared on load; their
// dtype and numel come from the first tensor naming the key. Thread-safe.
std::string PickleStateDict(absl::Span<const PickleTensor> tensors);

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_PICKLE_PICKLER_H_
