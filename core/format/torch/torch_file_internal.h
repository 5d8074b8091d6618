// Shared by the torch.save readers. Not part of the public API.
#ifndef WEIGHTD_CORE_FORMAT_TORCH_TORCH_FILE_INTERNAL_H_
#define WEIGHTD_CORE_FORMAT_TORCH_TORCH_FILE_INTERNAL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/checkpoint.h"
#include "core/checkpoint/dtype.h"

namespace weightd {
namespace torch_internal {

// Problems with storages found while unpickling that are reported only if
// no tensor error names them better (a short record is best reported as
// "tensor X needs N bytes" than as "record 3 is short").
struct DeferredErrors {
  std::vector<absl::Status> errors;
};

// Validates every tensor of `root` (named by its dotted path), then returns
// the first deferred error, if any. Messages are prefixed with `name`.
absl::Status ValidateTree(const Value& root, const std::string& name,
                          const DeferredErrors& deferred);

// The legacy (non-zip) format, for a file that does not start with "PK".
absl::StatusOr<ValuePtr> ReadLegacy(const std::shared_ptr<const Buffer>& file,
                                    const std::string& name, DeferredErrors* deferred);

// *bytes = numel * DTypeSize(dtype); false on a negative count or overflow.
bool CheckedBytes(int64_t numel, DType dtype, uint64_t* bytes);

}  // namespace torch_internal
}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_TORCH_TORCH_FILE_INTERNAL_H_
