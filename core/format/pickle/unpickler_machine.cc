// The unpickler machine's stack, memo and container bookkeeping: every
// limit (depth, tree size, key size, digits) is enforced here as values are
// built. The opcode loop is in unpickler.cc.
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/format/pickle/unpickler_internal.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace pickle_internal {
namespace {

// Python refuses int <-> str conversions beyond 4300 digits by default; the
// same bound keeps our quadratic decimal conversion cheap.
constexpr size_t kMaxDecimalDigits = 4300;

// Dict keys are str or int in practice; hashing a key walks all of it.
constexpr uint64_t kMaxKeyNodes = 1000;

// Bytes a list/tuple/set index adds to a dotted path: its digits and a '.'.
uint64_t IndexEdge(size_t index) {
  uint64_t n = 2;
  for (; index >= 10; index /= 10) ++n;
  return n;
}

// Bytes a dict key adds to a dotted path (as select.cc's KeyName spells it).
uint64_t KeyEdge(const Value& key) {
  return (key.is(Value::Kind::kString) ? key.str().size() : key.KeyText().size()) + 1;
}

}  // namespace

std::string Describe(const Item& item) {
  if (const ValuePtr* v = AsValue(item)) {
    if ((*v)->is(Value::Kind::kGlobal)) return absl::StrCat("global ", (*v)->str());
    if ((*v)->is(Value::Kind::kObject)) return absl::StrCat((*v)->str(), " object");
    return std::string((*v)->KindName());
  }
  if (const GlobalRef* g = AsGlobal(item)) return absl::StrCat("global ", g->name);
  if (AsStorage(item)) return "storage";
  return "tuple";
}

absl::Status Machine::Corrupt(absl::string_view reason) const {
  return absl::DataLossError(absl::StrCat(what_, ": ", reason, " at offset ", op_offset_));
}

absl::Status Machine::Refuse(absl::string_view reason) const {
  return absl::FailedPreconditionError(
      absl::StrCat(what_, ": ", reason, " at offset ", op_offset_));
}

absl::Status Machine::Need(size_t n, absl::string_view field) {
  size_t left = bytes_.size() - pos_;
  if (n > left) {
    return Corrupt(absl::StrCat("truncated pickle: ", field, " needs ", n, " bytes but ", left,
                                " remain"));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::string_view> Machine::ReadBytes(size_t n, absl::string_view field) {
  if (n > bytes_.size() - pos_) return Need(n, field);
  absl::string_view out(reinterpret_cast<const char*>(bytes_.data()) + pos_, n);
  pos_ += n;
  return out;
}

absl::StatusOr<absl::string_view> Machine::ReadLine() {
  const uint8_t* start = bytes_.data() + pos_;
  const void* nl = std::memchr(start, '\n', bytes_.size() - pos_);
  if (nl == nullptr) return Corrupt("truncated pickle: text argument has no newline");
  size_t n = static_cast<const uint8_t*>(nl) - start;
  pos_ += n + 1;
  return absl::string_view(reinterpret_cast<const char*>(start), n);
}

// A length-prefixed string: the length is checked against the limit and the
// remaining input before anything is allocated.
absl::StatusOr<absl::string_view> Machine::ReadSized(size_t width, absl::string_view field) {
  WEIGHTD_ASSIGN_OR_RETURN(uint64_t n, ReadUInt(width, field));
  if (n > limits_.max_string) {
    return Corrupt(absl::StrCat(field, " length ", n, " exceeds the limit of ",
                                limits_.max_string, " bytes"));
  }
  return ReadBytes(static_cast<size_t>(n), field);
}

absl::Status Machine::Push(Item item) {
  if (stack_.size() >= limits_.max_stack) {
    return Corrupt(absl::StrCat("stack exceeds the limit of ", limits_.max_stack, " entries"));
  }
  stack_.push_back(std::move(item));
  return absl::OkStatus();
}

absl::StatusOr<Item> Machine::Pop() {
  size_t floor = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= floor) return Corrupt("stack underflow");
  Item item = std::move(stack_.back());
  stack_.pop_back();
  return item;
}

absl::StatusOr<Item*> Machine::Top() {
  size_t floor = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= floor) return Corrupt("stack underflow");
  return &stack_.back();
}

absl::StatusOr<size_t> Machine::PopMark() {
  if (marks_.empty()) return Corrupt("MARK expected but none is set");
  size_t mark = marks_.back();
  marks_.pop_back();
  return mark;
}

absl::StatusOr<Item*> Machine::Below(size_t mark) {
  size_t floor = marks_.empty() ? 0 : marks_.back();
  if (mark <= floor) return Corrupt("stack underflow");
  return &stack_[mark - 1];
}

absl::StatusOr<ValuePtr> Machine::PopValue(absl::string_view opcode) {
  WEIGHTD_ASSIGN_OR_RETURN(Item item, Pop());
  if (const ValuePtr* v = AsValue(item)) return *v;
  return Refuse(absl::StrCat(opcode, " got a ", Describe(item), " where a value was expected"));
}

absl::Status Machine::MemoPut(uint64_t index) {
  WEIGHTD_ASSIGN_OR_RETURN(Item * top, Top());
  if (index < memo_dense_.size()) {
    memo_dense_[index] = *top;
    return absl::OkStatus();
  }
  bool added;
  if (index == memo_dense_.size()) {
    added = memo_sparse_.erase(index) == 0;
    memo_dense_.push_back(*top);
  } else {
    auto [it, inserted] = memo_sparse_.try_emplace(index, *top);
    if (!inserted) it->second = *top;
    added = inserted;
  }
  if (added && MemoSize() > limits_.max_memo) {
    return Corrupt(absl::StrCat("memo exceeds the limit of ", limits_.max_memo, " entries"));
  }
  return absl::OkStatus();
}

absl::Status Machine::MemoGet(uint64_t index) {
  if (index < memo_dense_.size()) return Push(memo_dense_[index]);
  auto it = memo_sparse_.find(index);
  if (it == memo_sparse_.end()) return Corrupt(absl::StrCat("memo has no entry ", index));
  return Push(it->second);
}

ValuePtr Machine::Int(int64_t v) {
  if (v < 0 || v >= static_cast<int64_t>(std::size(small_ints_))) return Value::Int(v);
  ValuePtr& slot = small_ints_[v];
  if (slot == nullptr) slot = Value::Int(v);
  return slot;
}

ValuePtr Machine::NewContainer(ValuePtr container) {
  NodeInfo& info = nodes_[container.get()];
  info.keep = container;
  info.depth = 1;
  info.nested = false;
  return container;
}

size_t Machine::DepthOf(const Item& item) const {
  if (const ObjTuple* t = AsObjTuple(item)) return t->depth;
  const ValuePtr* v = AsValue(item);
  if (v == nullptr) return 0;
  auto it = nodes_.find(v->get());
  return it == nodes_.end() ? 0 : it->second.depth;
}

uint64_t Machine::SizeOf(const Item& item) const {
  const ValuePtr* v = AsValue(item);
  if (v == nullptr) return 1;
  auto it = nodes_.find(v->get());
  return it == nodes_.end() ? 1 : it->second.size;
}

// Python's pickler always completes a child before putting it in its parent,
// so a container that already sits in another one is never modified again;
// only recursive (or crafted) structures do that, and we reject them. That
// keeps the graph acyclic and lets depth and expanded size be tracked
// exactly: every tree is shallower than max_depth (destroying or walking it
// cannot overflow the C++ stack) and expands to at most max_tree_nodes.
absl::Status Machine::AddChild(const ValuePtr& parent, const ValuePtr& child,
                               uint64_t edge_bytes) {
  if (parent == child) return Corrupt("recursive structure: a container contains itself");
  size_t need = 1;
  uint64_t child_size = 1;
  uint64_t child_text = 0;
  auto child_it = nodes_.find(child.get());
  if (child_it != nodes_.end()) {
    child_it->second.nested = true;
    need = child_it->second.depth + 1;
    child_size = child_it->second.size;
    child_text = child_it->second.text;
  } else if (child->is(Value::Kind::kString) || child->is(Value::Kind::kDevice)) {
    child_text = child->str().size();
  }
  NodeInfo& p = nodes_[parent.get()];
  if (p.keep == nullptr) p.keep = parent;
  if (p.nested) {
    return Corrupt(absl::StrCat("a ", parent->KindName(),
                                " is modified after being nested in another container"
                                " (recursive structure)"));
  }
  if (need > limits_.max_depth) {
    return Corrupt(absl::StrCat("nesting deeper than ", limits_.max_depth, " levels"));
  }
  p.depth = std::max(p.depth, need);
  if (__builtin_add_overflow(p.size, child_size, &p.size) || p.size > limits_.max_tree_nodes) {
    return Corrupt(absl::StrCat("value tree expands to more than ", limits_.max_tree_nodes,
                                " nodes"));
  }
  // Every node below `child` gets `edge_bytes` longer paths. Both terms are
  // below 2^63 (sizes and texts are bounded before they grow), so only the
  // product and the sums can overflow.
  uint64_t edges;
  if (__builtin_mul_overflow(edge_bytes, child_size, &edges) ||
      __builtin_add_overflow(p.text, edges, &p.text) ||
      __builtin_add_overflow(p.text, child_text, &p.text) || p.text > limits_.max_tree_text) {
    return Corrupt(absl::StrCat("value tree expands to more than ", limits_.max_tree_text,
                                " bytes of strings and key paths"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Item> Machine::MakeTuple(absl::Span<Item> items) {
  bool all_values = true;
  size_t depth = 1;
  for (const Item& item : items) {
    all_values = all_values && AsValue(item) != nullptr;
    depth = std::max(depth, DepthOf(item) + 1);
  }
  // (A Value tuple's expanded size is checked by AddChild below.)
  if (depth > limits_.max_depth) {
    return Corrupt(absl::StrCat("nesting deeper than ", limits_.max_depth, " levels"));
  }
  if (!all_values) {
    auto t = std::make_shared<ObjTuple>();
    t->items.assign(std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
    t->depth = depth;
    return Item(std::shared_ptr<const ObjTuple>(std::move(t)));
  }
  ValuePtr tuple = NewContainer(Value::Tuple());
  tuple->mutable_items().reserve(items.size());
  for (Item& item : items) {
    WEIGHTD_RETURN_IF_ERROR(
        AddChild(tuple, std::get<ValuePtr>(item), IndexEdge(tuple->items().size())));
    tuple->mutable_items().push_back(std::move(std::get<ValuePtr>(item)));
  }
  return Item(std::move(tuple));
}

absl::Status Machine::Append(const ValuePtr& list, absl::Span<Item> items,
                             absl::string_view opcode) {
  if (list->is(Value::Kind::kObject)) return RefuseOnObject(*list, opcode);
  if (!list->is(Value::Kind::kList)) {
    return Corrupt(absl::StrCat(opcode, " on a ", list->KindName(), ", not a list"));
  }
  for (Item& item : items) {
    const ValuePtr* v = AsValue(item);
    if (v == nullptr) return Refuse(absl::StrCat("a ", Describe(item), " cannot go in a list"));
    WEIGHTD_RETURN_IF_ERROR(AddChild(list, *v, IndexEdge(list->items().size())));
    list->mutable_items().push_back(std::move(std::get<ValuePtr>(item)));
  }
  return absl::OkStatus();
}

absl::Status Machine::SetItems(const ValuePtr& dict, absl::Span<Item> items,
                               absl::string_view opcode) {
  if (dict->is(Value::Kind::kObject)) return RefuseOnObject(*dict, opcode);
  if (!dict->is(Value::Kind::kDict)) {
    return Corrupt(absl::StrCat(opcode, " on a ", dict->KindName(), ", not a dict"));
  }
  if (items.size() % 2 != 0) return Corrupt(absl::StrCat(opcode, " with an odd number of items"));
  for (size_t i = 0; i < items.size(); i += 2) {
    const ValuePtr* k = AsValue(items[i]);
    const ValuePtr* v = AsValue(items[i + 1]);
    if (k == nullptr || v == nullptr) {
      return Refuse(absl::StrCat("a ", Describe(k ? items[i + 1] : items[i]),
                                 " cannot go in a dict"));
    }
    // Hashing a key walks it; real keys are str or int.
    if (SizeOf(*k) > kMaxKeyNodes) return Corrupt("dict key is too large");
    WEIGHTD_RETURN_IF_ERROR(AddChild(dict, *k, 0));
    WEIGHTD_RETURN_IF_ERROR(AddChild(dict, *v, KeyEdge(**k)));
    absl::Status s = dict->SetItem(std::move(std::get<ValuePtr>(items[i])),
                                   std::move(std::get<ValuePtr>(items[i + 1])));
    if (!s.ok()) return Corrupt(s.message());
  }
  return absl::OkStatus();
}

absl::Status Machine::AddItems(const ValuePtr& set, absl::Span<Item> items,
                               absl::string_view opcode) {
  if (set->is(Value::Kind::kObject)) return RefuseOnObject(*set, opcode);
  if (!set->is(Value::Kind::kSet)) {
    return Corrupt(absl::StrCat(opcode, " on a ", set->KindName(), ", not a set"));
  }
  for (Item& item : items) {
    const ValuePtr* v = AsValue(item);
    if (v == nullptr) return Refuse(absl::StrCat("a ", Describe(item), " cannot go in a set"));
    WEIGHTD_RETURN_IF_ERROR(AddChild(set, *v, IndexEdge(set->items().size())));
    set->mutable_items().push_back(std::move(std::get<ValuePtr>(item)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Item> Machine::ParseIntLine(absl::string_view line, bool is_long) {
  if (is_long && !line.empty() && line.back() == 'L') line.remove_suffix(1);
  if (!is_long && line == "00") return Item(Value::Bool(false));  // protocol 0 bools
  if (!is_long && line == "01") return Item(Value::Bool(true));
  bool negative = false;
  absl::string_view digits = line;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.size() > kMaxDecimalDigits) {
    return Corrupt("bad integer text");
  }
  for (char c : digits) {
    if (!absl::ascii_isdigit(c)) return Corrupt("bad integer text");
  }
  return Item(IntFromDecimal(digits, negative));
}

}  // namespace pickle_internal
}  // namespace weightd
