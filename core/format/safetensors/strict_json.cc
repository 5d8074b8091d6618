#include "core/format/safetensors/strict_json.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace weightd {
namespace internal_safetensors {
namespace {

using Json = nlohmann::json;

// Builds the DOM through nlohmann's own DOM builder while checking each object
// for repeated keys and bounding the depth; returning false aborts the parse
// at the offending token, so nothing past it is allocated.
class StrictSax {
 public:
  StrictSax(StrictJson* out, const std::vector<std::string>& ordered_children)
      : out_(out),
        ordered_children_(ordered_children),
        dom_(out->value, /*allow_exceptions_=*/false) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const std::string& s) {
    return dom_.number_float(v, s);
  }
  bool string(std::string& v) { return dom_.string(v); }
  bool binary(Json::binary_t& v) { return dom_.binary(v); }

  bool start_object(std::size_t len) {
    if (!Enter()) return false;
    keys_.emplace_back();
    if (depth_ == 1) root_is_object_ = true;
    if (depth_ == 2 && root_is_object_ && !out_->top_level_keys.empty()) {
      const std::string& parent = out_->top_level_keys.back();
      for (const std::string& name : ordered_children_) {
        if (name == parent) ordered_child_ = &out_->child_keys[parent];
      }
    }
    return dom_.start_object(len);
  }
  bool key(std::string& k) {
    if (!keys_.back().insert(k).second) {
      error_ = absl::StrCat("duplicate key ", JsonQuote(k));
      duplicate_ = true;
      return false;
    }
    // Keys only occur in objects, so depth 1 is the root object.
    if (depth_ == 1) out_->top_level_keys.push_back(k);
    if (depth_ == 2 && ordered_child_ != nullptr) ordered_child_->push_back(k);
    return dom_.key(k);
  }
  bool end_object() {
    keys_.pop_back();
    if (depth_ == 2) ordered_child_ = nullptr;
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t len) {
    if (!Enter()) return false;
    return dom_.start_array(len);
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    error_ = ex.what();
    return false;
  }

  const std::string& error() const { return error_; }
  bool duplicate() const { return duplicate_; }

 private:
  bool Enter() {
    if (++depth_ > kMaxJsonDepth) {
      error_ = absl::StrCat("nested deeper than ", kMaxJsonDepth, " levels");
      return false;
    }
    return true;
  }

  StrictJson* out_;
  const std::vector<std::string>& ordered_children_;
  bool root_is_object_ = false;
  std::vector<std::string>* ordered_child_ = nullptr;  // keys of the open one
  // nlohmann's internal DOM builder: the public parse() has no hook that can
  // stop at a duplicate key without also dropping later events.
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  std::vector<absl::flat_hash_set<std::string>> keys_;
  int depth_ = 0;
  std::string error_;
  bool duplicate_ = false;
};

}  // namespace

absl::StatusOr<StrictJson> ParseStrictJson(absl::string_view text,
                                           const std::vector<std::string>& ordered_children) {
  StrictJson out;
  std::string error;
  bool ok = false;
  bool duplicate = false;
  {
    StrictSax sax(&out, ordered_children);
    try {
      ok = Json::sax_parse(text.begin(), text.end(), &sax, Json::input_format_t::json,
                           /*strict=*/true);
      error = sax.error();
      duplicate = sax.duplicate();
    } catch (const std::exception& e) {
      ok = false;
      error = e.what();
    }
  }
  if (duplicate) return absl::AlreadyExistsError(error);
  if (!ok) {
    return absl::InvalidArgumentError(error.empty() ? std::string("invalid JSON") : error);
  }
  return out;
}

bool IsValidUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char* end = p + text.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += extra + 1;
  }
  return true;
}

std::string JsonQuote(absl::string_view text) {
  return Json(std::string(text))
      .dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

}  // namespace internal_safetensors
}  // namespace weightd
