// Internals of the restricted unpickler, shared by its .cc files. Not part of
// the public API.
#ifndef WEIGHTD_CORE_FORMAT_PICKLE_UNPICKLER_INTERNAL_H_
#define WEIGHTD_CORE_FORMAT_PICKLE_UNPICKLER_INTERNAL_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/checkpoint/value.h"
#include "core/format/pickle/unpickler.h"

namespace weightd {
namespace pickle_internal {

// The allowlisted globals. Nothing is ever looked up by name at run time:
// a GLOBAL either maps to one of these or is refused.
enum class GlobalKind {
  kOrderedDict,
  kRebuildTensorV2,
  kRebuildTensorV3,  // torch >= 2.1: dtypes without a <Type>Storage class
  kRebuildTensor,
  kRebuildParameter,
  kRebuildParameterWithState,
  kRebuildFromTypeV2,
  kStorageType,  // torch.FloatStorage...; only inside a persistent id
  kTorchSize,
  kTorchDevice,
  kCodecsEncode,
  kSet,
  kFrozenSet,
  kByteArray,
  kParameterClass,  // only inside _rebuild_from_type_v2
  kTensorClass,     // only inside _rebuild_from_type_v2
  kTorchVersion,    // torch.torch_version.TorchVersion('2.6.0'): a str subclass
};

struct GlobalRef {
  GlobalKind kind;
  DType dtype = DType::kFloat32;  // for kStorageType
  bool untyped = false;           // kStorageType torch.UntypedStorage (bytes)
  std::string name;               // "module.name", for messages
};

// What a persistent id resolved to: a storage, or (legacy view_metadata) a
// slice of one, expressed as an element offset into the root storage because
// the root's bytes may not be filled in yet.
// A torch.UntypedStorage has no dtype until _rebuild_tensor_v3 names one, so
// it is not loaded at its persistent id: `untyped` holds the request (numel
// in bytes) and `storage` stays null until a v3 call types it.
struct StorageRef {
  std::shared_ptr<const Storage> storage;
  DType dtype;
  int64_t offset = 0;  // elements
  int64_t numel = 0;   // elements visible through this reference
  // (Apart, so that the typed case every tensor takes stays small.)
  std::unique_ptr<const StorageRequest> untyped;
};

struct ObjTuple;

// A stack or memo entry. Most are Values; globals, storages and tuples that
// hold them only live on the stack as arguments and never enter the tree.
using Item = std::variant<ValuePtr, std::shared_ptr<const GlobalRef>,
                          std::shared_ptr<const StorageRef>, std::shared_ptr<const ObjTuple>>;

// A tuple with at least one non-Value item, e.g. a persistent id holding
// torch.FloatStorage or the arguments of a REDUCE. Inline items: one
// allocation for the two such tuples every tensor makes (5 and 6 items).
struct ObjTuple {
  absl::InlinedVector<Item, 6> items;
  size_t depth = 1;
};

inline const ValuePtr* AsValue(const Item& item) { return std::get_if<ValuePtr>(&item); }
inline const GlobalRef* AsGlobal(const Item& item) {
  auto* p = std::get_if<std::shared_ptr<const GlobalRef>>(&item);
  return p ? p->get() : nullptr;
}
inline const StorageRef* AsStorage(const Item& item) {
  auto* p = std::get_if<std::shared_ptr<const StorageRef>>(&item);
  return p ? p->get() : nullptr;
}
inline const ObjTuple* AsObjTuple(const Item& item) {
  auto* p = std::get_if<std::shared_ptr<const ObjTuple>>(&item);
  return p ? p->get() : nullptr;
}

// Scalar decoders (unpickler_scalars.cc).
// LONG1 / LONG4 payload: little-endian two's complement -> Int or BigInt.
ValuePtr IntFromTwosComplement(absl::string_view bytes);
// Decimal digits (no sign) of protocol 0 INT/LONG text -> Int or BigInt.
ValuePtr IntFromDecimal(absl::string_view digits, bool negative);
// codecs.escape_decode, applied to the quoted STRING argument.
std::string EscapeDecode(absl::string_view s);
// raw-unicode-escape (protocol 0 UNICODE) to UTF-8; false on a bad code point.
bool RawUnicodeEscapeToUtf8(absl::string_view s, std::string* out);
double BigEndianDouble(absl::string_view bytes);

// Short description of an item for error messages ("list", "global torch.Size").
std::string Describe(const Item& item);

// The interpreter state of one Unpickle call.
class Machine {
 public:
  // Input bytes the memo is sized for up front (~8k tensors, 1.5 MB).
  static constexpr size_t kReserveInputBytes = size_t{1} << 20;

  // `mode` is kData or kWholeModel.
  Machine(absl::Span<const uint8_t> bytes, absl::string_view what, const StorageLoader& loader,
          const UnpicklerLimits& limits, PickleMode mode)
      : bytes_(bytes), what_(what), loader_(loader), limits_(limits), mode_(mode) {
    // torch.save writes ~130 bytes and 8 memo entries a tensor: the memo is
    // sized from the input so that a big state dict does not regrow it all
    // the way up. Capped, since `bytes` may run on past STOP (a legacy
    // file's pickles are followed by its storages, GiBs); the vector is
    // not touched until used. (Reserving nodes_ too cost a legacy load
    // ~1 ms of table setup for < 1% at 8k tensors.)
    memo_dense_.reserve(std::min<size_t>(bytes.size(), kReserveInputBytes) / 16);
  }

  absl::StatusOr<ValuePtr> Run(size_t* consumed);

  // Whether a global outside the allowlist was refused (kData).
  bool refused_global() const { return refused_global_; }
  // Whether an object was instantiated / a module BUILT (kWholeModel).
  bool made_objects() const { return made_objects_; }
  bool saw_module() const { return saw_module_; }

 private:
  // --- errors (message: "<what>: <reason> at offset N") ---
  absl::Status Corrupt(absl::string_view reason) const;  // DataLoss
  absl::Status Refuse(absl::string_view reason) const;   // FailedPrecondition

  // --- input ---
  absl::Status Need(size_t n, absl::string_view field);
  absl::StatusOr<absl::string_view> ReadBytes(size_t n, absl::string_view field);
  // Little endian. Every opcode argument goes through here, so it is
  // inline and makes no Status when the bytes are there.
  absl::StatusOr<uint64_t> ReadUInt(size_t width, absl::string_view field) {
    if (width > bytes_.size() - pos_) return Need(width, field);
    const uint8_t* b = bytes_.data() + pos_;
    pos_ += width;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v |= uint64_t{b[i]} << (8 * i);
    return v;
  }
  absl::StatusOr<absl::string_view> ReadLine();  // without the '\n'
  absl::StatusOr<absl::string_view> ReadSized(size_t width, absl::string_view field);

  // --- stack ---
  absl::Status Push(Item item);
  absl::StatusOr<Item> Pop();
  absl::StatusOr<Item*> Top();
  // Pops the last MARK and returns where it was: the items above it stay on
  // the stack (ItemsFrom) until the caller drops them with DropFrom, so no
  // opcode copies them into a vector of its own.
  absl::StatusOr<size_t> PopMark();
  absl::Span<Item> ItemsFrom(size_t mark) {
    return absl::MakeSpan(stack_.data() + mark, stack_.size() - mark);
  }
  void DropFrom(size_t mark) { stack_.resize(mark); }
  // The item right below `mark` (APPENDS' list, SETITEMS' dict).
  absl::StatusOr<Item*> Below(size_t mark);
  absl::StatusOr<ValuePtr> PopValue(absl::string_view opcode);

  // --- memo ---
  absl::Status MemoPut(uint64_t index);
  absl::Status MemoGet(uint64_t index);
  size_t MemoSize() const { return memo_dense_.size() + memo_sparse_.size(); }

  // --- leaves ---
  // None, True, False and ints 0..255, which a state dict repeats for every
  // tensor (offsets, 1-dim sizes and strides, requires_grad): made once per
  // call and shared by the tree's nodes, as Python shares them. Leaves are
  // never modified, so sharing one is invisible.
  ValuePtr None() {
    if (none_ == nullptr) none_ = Value::None();
    return none_;
  }
  ValuePtr Bool(bool v) {
    if (bools_[v] == nullptr) bools_[v] = Value::Bool(v);
    return bools_[v];
  }
  ValuePtr Int(int64_t v);

  // --- containers and nesting depth ---
  ValuePtr NewContainer(ValuePtr container);
  size_t DepthOf(const Item& item) const;
  uint64_t SizeOf(const Item& item) const;  // nodes, shared subtrees counted per use
  // Records that `child` now sits inside `parent` (a container made here),
  // reached by a path component of `edge_bytes` (a dict key or list index
  // plus its '.'; 0 for a dict key itself).
  absl::Status AddChild(const ValuePtr& parent, const ValuePtr& child, uint64_t edge_bytes);
  // These move from `items` (left valueless).
  absl::StatusOr<Item> MakeTuple(absl::Span<Item> items);
  absl::Status Append(const ValuePtr& list, absl::Span<Item> items, absl::string_view opcode);
  absl::Status SetItems(const ValuePtr& dict, absl::Span<Item> items, absl::string_view opcode);
  absl::Status AddItems(const ValuePtr& set, absl::Span<Item> items, absl::string_view opcode);

  // --- opcode groups ---
  absl::Status Step(uint8_t op);
  absl::StatusOr<Item> ParseIntLine(absl::string_view line, bool is_long);

  // --- allowlist (unpickler_reduce.cc) ---
  absl::StatusOr<Item> FindGlobal(absl::string_view module, absl::string_view name);
  absl::StatusOr<Item> Call(const Item& callable, const Item& args, absl::string_view opcode);
  absl::StatusOr<Item> CallGlobal(const GlobalRef& fn, absl::Span<const Item> args);
  absl::StatusOr<Item> PersistentLoad(const Item& pid);
  absl::Status Build(const Item& inst, const Item& state);
  // --- whole-model objects (unpickler_objects.cc) ---
  absl::StatusOr<Item> CallRecorded(const Value& global, const Item& args,
                                    absl::string_view opcode);
  absl::StatusOr<Item> Instantiate(const std::string& class_name, ValuePtr args);
  absl::Status BuildObject(const ValuePtr& object, const Item& state);
  absl::Status RefuseOnObject(const Value& object, absl::string_view opcode) const;
  absl::StatusOr<Item> RebuildTensor(const GlobalRef& fn, absl::Span<const Item> args);
  absl::StatusOr<Item> RebuildParameter(const GlobalRef& fn, absl::Span<const Item> args);
  absl::StatusOr<Item> RebuildFromType(absl::Span<const Item> args);
  absl::StatusOr<std::vector<int64_t>> IntTuple(const Item& item, absl::string_view what);
  absl::StatusOr<int64_t> IntArg(const Item& item, absl::string_view what);
  absl::StatusOr<bool> BoolArg(const Item& item, absl::string_view what);
  absl::StatusOr<std::string> StrArg(const Item& item, absl::string_view what);
  absl::StatusOr<std::vector<ValuePtr>> Iterable(const Item& item, absl::string_view what);
  bool IsEmptyState(const Item& state) const;
  bool IsAttributeState(const Item& state) const;

  struct NodeInfo {
    ValuePtr keep;  // keeps the address from being reused while we track it
    size_t depth = 1;
    uint64_t size = 1;
    uint64_t text = 0;  // see UnpicklerLimits::max_tree_text
    bool nested = false;
  };

  absl::Span<const uint8_t> bytes_;
  absl::string_view what_;
  const StorageLoader& loader_;
  const UnpicklerLimits& limits_;
  const PickleMode mode_;
  bool refused_global_ = false;
  bool made_objects_ = false;
  bool saw_module_ = false;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  bool stopped_ = false;
  std::vector<Item> stack_;
  std::vector<size_t> marks_;
  // The memo: pickle writes indices 0, 1, 2... (PUT and MEMOIZE), kept in
  // a vector; any other index (crafted files) in the map. An index is in
  // one of the two, never both.
  std::vector<Item> memo_dense_;
  absl::flat_hash_map<uint64_t, Item> memo_sparse_;
  absl::flat_hash_map<const Value*, NodeInfo> nodes_;
  ValuePtr none_;
  ValuePtr bools_[2];
  ValuePtr small_ints_[256];
};

}  // namespace pickle_internal
}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_PICKLE_UNPICKLER_INTERNAL_H_
