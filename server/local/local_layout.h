// Where the bytes of a planned Fetch lie, for the same-node path: tensors
// stored contiguously in the dtype asked are (checkpoint file, offset);
// the others are written into one sealed memfd per response. No gRPC here.
#ifndef WEIGHTD_SERVER_LOCAL_LOCAL_LAYOUT_H_
#define WEIGHTD_SERVER_LOCAL_LOCAL_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/checkpoint/dtype.h"
#include "core/ipc/unique_fd.h"
#include "server/cache/fetch_plan.h"
#include "server/cache/snapshot.h"

namespace weightd {

// Alignment of each tensor inside the memfd (a cache line, and what
// torch.save gives tensors in its zip).
inline constexpr uint64_t kMemfdAlignment = 64;

struct LocalFileOut {
  std::string kind;  // "checkpoint" or "memfd"
  std::string name;  // relative to the repository when it lies inside it
  uint64_t size = 0;
  UniqueFd fd;  // read-only, close-on-exec; a dup owned by the layout
};

// Where one planned tensor's row-major bytes are. Today always a file; a
// GPU-resident tensor will get a location of its own kind here.
struct LocalLocation {
  enum class Kind { kFile };
  Kind kind = Kind::kFile;
  uint32_t file = 0;  // into LocalLayout::files (meaningless for 0 bytes)
  uint64_t offset = 0;
};

struct LocalTensorOut {
  std::string name;
  std::string source;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  LocalLocation location;
  std::optional<uint64_t> checksum;  // xxHash64, when asked
};

struct LocalLayout {
  std::vector<LocalFileOut> files;
  std::vector<LocalTensorOut> tensors;  // in plan order
  uint64_t memfd_bytes = 0;             // tensor bytes copied into the memfd
};

struct LocalLayoutOptions {
  bool checksums = false;
  // Stripped from file paths for LocalFileOut::name.
  std::string repository;
};

// `plan` must come from PlanFetch over `view`, whose snapshot the caller
// holds. Errors name the tensor (a failed cast) or the memfd (no memory).
absl::StatusOr<LocalLayout> BuildLocalLayout(const StateDictView& view, const FetchPlan& plan,
                                             const LocalLayoutOptions& options);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_LOCAL_LOCAL_LAYOUT_H_
