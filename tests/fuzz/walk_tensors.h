// For fuzz targets that read a pickle tree: every tensor a reader validated
// must be readable end to end.
#ifndef WEIGHTD_TESTS_FUZZ_WALK_TENSORS_H_
#define WEIGHTD_TESTS_FUZZ_WALK_TENSORS_H_

#include <vector>

#include "core/checkpoint/value.h"

namespace weightd::fuzz {

// Checksums each tensor under `root` (all its bytes are touched).
inline void ChecksumEveryTensor(const Value& root) {
  std::vector<const Value*> stack = {&root};
  while (!stack.empty()) {
    const Value* v = stack.back();
    stack.pop_back();
    // Stride-0 tensors may describe far more bytes than the input holds.
    if (v->is(Value::Kind::kTensor) && v->tensor().nbytes() <= (16u << 20)) {
      (void)v->tensor().Checksum();
    }
    for (const auto& item : v->items()) stack.push_back(item.get());
    for (const auto& [key, value] : v->entries()) stack.push_back(value.get());
  }
}

}  // namespace weightd::fuzz

#endif  // WEIGHTD_TESTS_FUZZ_WALK_TENSORS_H_
