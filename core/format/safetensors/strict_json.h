// A JSON parser for untrusted headers: nlohmann's parser silently keeps the
// last of duplicate object keys and builds arbitrarily deep trees; this one
// rejects both, and remembers the order of the top-level keys.
#ifndef WEIGHTD_CORE_FORMAT_SAFETENSORS_STRICT_JSON_H_
#define WEIGHTD_CORE_FORMAT_SAFETENSORS_STRICT_JSON_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace weightd {
namespace internal_safetensors {

// Deeper nesting than any safetensors header or index needs.
inline constexpr int kMaxJsonDepth = 32;

struct StrictJson {
  // std::map-backed objects: lookups stay O(log n) for headers with millions
  // of entries (ordered_json looks keys up linearly).
  nlohmann::json value;
  // Keys of the top-level object in file order (empty when it is no object).
  std::vector<std::string> top_level_keys;
  // Keys of the objects at the top-level keys named in `ordered_children`
  // (see below), in file order.
  std::map<std::string, std::vector<std::string>> child_keys;
};

// Parses `text` as one JSON document (trailing whitespace allowed). Errors say
// what is wrong (the caller picks its own code): AlreadyExists for a repeated
// key, naming it ("duplicate key \"a.weight\""), else InvalidArgument. When the root is an
// object, the key order of its members named in `ordered_children` that are
// objects goes to child_keys (e.g. an index's "weight_map").
absl::StatusOr<StrictJson> ParseStrictJson(absl::string_view text,
                                           const std::vector<std::string>& ordered_children = {});

// True if `text` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// Quotes and escapes `text` as a JSON string; `text` must be valid UTF-8.
std::string JsonQuote(absl::string_view text);

}  // namespace internal_safetensors
}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_SAFETENSORS_STRICT_JSON_H_
