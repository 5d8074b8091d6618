// The value tree a checkpoint file holds: what Python's torch.load would
// return, restricted to data (dicts, lists, scalars, strings, tensors), plus
// inert records of the objects of a whole-model pickle (torch.save(model)):
// a class name and its pickled state, never a live object.
#ifndef WEIGHTD_CORE_CHECKPOINT_VALUE_H_
#define WEIGHTD_CORE_CHECKPOINT_VALUE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/checkpoint/tensor.h"

namespace weightd {

class Value;
using ValuePtr = std::shared_ptr<Value>;

// A node of the tree. Mutable while a reader builds it; treat a finished
// tree as immutable (readers hand it out as shared_ptr<const Value>).
class Value {
 public:
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kBigInt,  // beyond int64: little-endian two's complement bytes in str()
    kFloat,
    kComplex,
    kString,
    kBytes,
    kList,
    kTuple,
    kSet,
    kDict,
    kTensor,
    kDType,
    kDevice,  // torch.device: str() holds "cuda:0"
    // A reference to a class or function by name ("torch.nn.modules.conv.Conv2d")
    // that was never looked up: str() holds the name.
    kGlobal,
    // An object a whole-model pickle instantiated (NEWOBJ), or an allowlisted
    // call it recorded (functools.partial): str() holds the class name,
    // object_args() the arguments and object_state() what BUILD gave (None
    // before BUILD). Nothing of the class ever runs.
    kObject,
  };

  static ValuePtr None();
  static ValuePtr Bool(bool v);
  static ValuePtr Int(int64_t v);
  static ValuePtr BigInt(std::string le_bytes);
  static ValuePtr Float(double v);
  static ValuePtr Complex(double re, double im);
  static ValuePtr String(std::string v);
  static ValuePtr Bytes(std::string v);
  static ValuePtr List(std::vector<ValuePtr> items = {});
  static ValuePtr Tuple(std::vector<ValuePtr> items = {});
  static ValuePtr Set(std::vector<ValuePtr> items = {});
  static ValuePtr Dict();
  static ValuePtr Tensor(TensorRecord tensor);
  static ValuePtr DTypeValue(DType dtype);
  static ValuePtr Device(std::string device);
  static ValuePtr Global(std::string name);
  static ValuePtr Object(std::string class_name, ValuePtr args);

  Kind kind() const { return kind_; }
  bool is(Kind kind) const { return kind_ == kind; }
  bool bool_value() const { return int_value() != 0; }
  int64_t int_value() const { return has_int() ? num_.i : 0; }
  double float_value() const { return has_int() ? 0 : num_.f; }
  double imag_value() const { return imag_; }
  const std::string& str() const { return str_; }
  DType dtype() const { return dtype_; }

  // List, tuple and set items.
  const std::vector<ValuePtr>& items() const { return items_; }
  std::vector<ValuePtr>& mutable_items() { return items_; }

  // Dict entries in insertion order (Python dicts are ordered); empty for
  // every other kind.
  const std::vector<std::pair<ValuePtr, ValuePtr>>& entries() const;
  // Python's d[key] = value: replaces the value of an equal key, else appends.
  // Fails for unhashable keys (lists, dicts, tensors).
  absl::Status SetItem(ValuePtr key, ValuePtr value);
  // Value of the string key `key`, or nullptr.
  const Value* Find(absl::string_view key) const;

  // kObject: the arguments (a tuple) and the BUILD state. They are also
  // items()[0] and items()[1], so code that walks items() sees them.
  const ValuePtr& object_args() const { return items_[0]; }
  const ValuePtr& object_state() const { return items_[1]; }
  void set_object_state(ValuePtr state) { items_[1] = std::move(state); }

  // kTensor only.
  const TensorRecord& tensor() const { return *tensor_; }
  TensorRecord& mutable_tensor() { return *tensor_; }

  // Python's repr-like text of a key ("'name'", "3", "None"), for paths.
  std::string KeyText() const;

  absl::string_view KindName() const;

 private:
  // For std::make_shared (one allocation per node, not two); only Value's
  // factories can name it.
  struct Token {
    explicit Token() = default;
  };

 public:
  Value(Token, Kind kind) : kind_(kind) {}

 private:
  static ValuePtr Make(Kind kind) { return std::make_shared<Value>(Token{}, kind); }
  bool has_int() const { return kind_ == Kind::kBool || kind_ == Kind::kInt; }

  // A dict's entries and their index, apart so that the many other nodes of
  // a tree (a state dict has ~10 per tensor) stay small.
  struct DictData {
    std::vector<std::pair<ValuePtr, ValuePtr>> entries;
    // str keys (the common case), viewing the key's own str(): no copy.
    absl::flat_hash_map<absl::string_view, size_t> str_index;
    // Every other hashable key, by a string equal for keys Python considers
    // equal (1 == True == 1.0).
    absl::flat_hash_map<std::string, size_t> other_index;
  };

  Kind kind_;
  DType dtype_ = DType::kFloat32;
  union {
    int64_t i;  // kBool, kInt
    double f;   // kFloat, kComplex (real part)
  } num_ = {0};
  double imag_ = 0;
  std::string str_;
  std::vector<ValuePtr> items_;
  std::unique_ptr<DictData> dict_;          // kDict
  std::unique_ptr<TensorRecord> tensor_;    // kTensor
};

}  // namespace weightd

#endif  // WEIGHTD_CORE_CHECKPOINT_VALUE_H_
