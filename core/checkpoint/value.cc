#include "core/checkpoint/value.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weightd {
namespace {

// A string equal for keys Python considers equal (1 == True, 1 == 1.0).
absl::StatusOr<std::string> HashKey(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::kNone:
      return std::string("n");
    case Value::Kind::kBool:
    case Value::Kind::kInt:
      return absl::StrCat("i", key.int_value());
    case Value::Kind::kBigInt:
      return absl::StrCat("I", key.str());
    case Value::Kind::kFloat: {
      double v = key.float_value();
      // Range first: casting an out-of-range double (or NaN) is undefined.
      if (v > -9.2e18 && v < 9.2e18 && v == static_cast<double>(static_cast<int64_t>(v))) {
        return absl::StrCat("i", static_cast<int64_t>(v));
      }
      return absl::StrFormat("f%.17g", v);
    }
    case Value::Kind::kString:
      return absl::StrCat("s", key.str());
    case Value::Kind::kBytes:
      return absl::StrCat("b", key.str());
    case Value::Kind::kDType:
      return absl::StrCat("d", DTypeName(key.dtype()));
    case Value::Kind::kTuple: {
      std::string out = "t(";
      for (const ValuePtr& item : key.items()) {
        absl::StatusOr<std::string> part = HashKey(*item);
        if (!part.ok()) return part.status();
        absl::StrAppend(&out, part->size(), ":", *part);
      }
      return absl::StrCat(out, ")");
    }
    default:
      return absl::DataLossError(absl::StrCat("unhashable dict key of type ", key.KindName()));
  }
}

}  // namespace

ValuePtr Value::None() { return Make(Kind::kNone); }
ValuePtr Value::Bool(bool v) {
  ValuePtr p = Make(Kind::kBool);
  p->num_.i = v ? 1 : 0;
  return p;
}
ValuePtr Value::Int(int64_t v) {
  ValuePtr p = Make(Kind::kInt);
  p->num_.i = v;
  return p;
}
ValuePtr Value::BigInt(std::string le_bytes) {
  ValuePtr p = Make(Kind::kBigInt);
  p->str_ = std::move(le_bytes);
  return p;
}
ValuePtr Value::Float(double v) {
  ValuePtr p = Make(Kind::kFloat);
  p->num_.f = v;
  return p;
}
ValuePtr Value::Complex(double re, double im) {
  ValuePtr p = Make(Kind::kComplex);
  p->num_.f = re;
  p->imag_ = im;
  return p;
}
ValuePtr Value::String(std::string v) {
  ValuePtr p = Make(Kind::kString);
  p->str_ = std::move(v);
  return p;
}
ValuePtr Value::Bytes(std::string v) {
  ValuePtr p = Make(Kind::kBytes);
  p->str_ = std::move(v);
  return p;
}
ValuePtr Value::List(std::vector<ValuePtr> items) {
  ValuePtr p = Make(Kind::kList);
  p->items_ = std::move(items);
  return p;
}
ValuePtr Value::Tuple(std::vector<ValuePtr> items) {
  ValuePtr p = Make(Kind::kTuple);
  p->items_ = std::move(items);
  return p;
}
ValuePtr Value::Set(std::vector<ValuePtr> items) {
  ValuePtr p = Make(Kind::kSet);
  p->items_ = std::move(items);
  return p;
}
ValuePtr Value::Dict() {
  ValuePtr p = Make(Kind::kDict);
  p->dict_ = std::make_unique<DictData>();
  return p;
}
ValuePtr Value::Tensor(TensorRecord tensor) {
  ValuePtr p = Make(Kind::kTensor);
  p->tensor_ = std::make_unique<TensorRecord>(std::move(tensor));
  return p;
}
ValuePtr Value::DTypeValue(DType dtype) {
  ValuePtr p = Make(Kind::kDType);
  p->dtype_ = dtype;
  return p;
}
ValuePtr Value::Device(std::string device) {
  ValuePtr p = Make(Kind::kDevice);
  p->str_ = std::move(device);
  return p;
}

ValuePtr Value::Global(std::string name) {
  ValuePtr p = Make(Kind::kGlobal);
  p->str_ = std::move(name);
  return p;
}
ValuePtr Value::Object(std::string class_name, ValuePtr args) {
  ValuePtr p = Make(Kind::kObject);
  p->str_ = std::move(class_name);
  p->items_ = {std::move(args), None()};
  return p;
}

const std::vector<std::pair<ValuePtr, ValuePtr>>& Value::entries() const {
  static const auto* const kNoEntries = new std::vector<std::pair<ValuePtr, ValuePtr>>();
  return dict_ != nullptr ? dict_->entries : *kNoEntries;
}

absl::Status Value::SetItem(ValuePtr key, ValuePtr value) {
  if (kind_ != Kind::kDict) {
    return absl::DataLossError(absl::StrCat("item assignment on a ", KindName(), ", not a dict"));
  }
  std::vector<std::pair<ValuePtr, ValuePtr>>& entries = dict_->entries;
  bool inserted;
  size_t* index;
  if (key->is(Kind::kString)) {
    // The view stays valid: the key is kept in `entries`, and a later equal
    // key only replaces the value (Python keeps the first key object).
    auto it = dict_->str_index.try_emplace(key->str(), entries.size());
    inserted = it.second;
    index = &it.first->second;
  } else {
    absl::StatusOr<std::string> hash = HashKey(*key);
    if (!hash.ok()) return hash.status();
    auto it = dict_->other_index.try_emplace(*std::move(hash), entries.size());
    inserted = it.second;
    index = &it.first->second;
  }
  if (inserted) {
    entries.emplace_back(std::move(key), std::move(value));
  } else {
    entries[*index].second = std::move(value);
  }
  return absl::OkStatus();
}

const Value* Value::Find(absl::string_view key) const {
  if (dict_ == nullptr) return nullptr;
  auto it = dict_->str_index.find(key);
  return it == dict_->str_index.end() ? nullptr : dict_->entries[it->second].second.get();
}

std::string Value::KeyText() const {
  switch (kind_) {
    case Kind::kString:
      return str_;
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return num_.i ? "True" : "False";
    case Kind::kInt:
      return absl::StrCat(num_.i);
    case Kind::kFloat:
      return absl::StrFormat("%g", num_.f);
    default:
      return absl::StrCat("<", KindName(), ">");
  }
}

absl::string_view Value::KindName() const {
  switch (kind_) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kBigInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kComplex: return "complex";
    case Kind::kString: return "str";
    case Kind::kBytes: return "bytes";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kSet: return "set";
    case Kind::kDict: return "dict";
    case Kind::kTensor: return "Tensor";
    case Kind::kDType: return "torch.dtype";
    case Kind::kDevice: return "torch.device";
    case Kind::kGlobal: return "global";
    case Kind::kObject: return "object";
  }
  return "?";
}

}  // namespace weightd
