// The opcode interpreter of the restricted unpickler. The allowlist of
// globals and what calling them means lives in unpickler_reduce.cc.
#include "core/format/pickle/unpickler.h"

#include <cstring>
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
  WEIGHTD_RETURN_IF_ERROR(Need(n, field));
  absl::string_view out(reinterpret_cast<const char*>(bytes_.data()) + pos_, n);
  pos_ += n;
  return out;
}

absl::StatusOr<uint64_t> Machine::ReadUInt(size_t width, absl::string_view field) {
  WEIGHTD_ASSIGN_OR_RETURN(absl::string_view b, ReadBytes(width, field));
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= uint64_t{static_cast<uint8_t>(b[i])} << (8 * i);
  return v;
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

absl::StatusOr<std::vector<Item>> Machine::PopMark() {
  if (marks_.empty()) return Corrupt("MARK expected but none is set");
  size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<Item> items(std::make_move_iterator(stack_.begin() + mark),
                          std::make_move_iterator(stack_.end()));
  stack_.resize(mark);
  return items;
}

absl::StatusOr<ValuePtr> Machine::PopValue(absl::string_view opcode) {
  WEIGHTD_ASSIGN_OR_RETURN(Item item, Pop());
  if (const ValuePtr* v = AsValue(item)) return *v;
  return Refuse(absl::StrCat(opcode, " got a ", Describe(item), " where a value was expected"));
}

absl::Status Machine::MemoPut(uint64_t index) {
  WEIGHTD_ASSIGN_OR_RETURN(Item * top, Top());
  auto [it, inserted] = memo_.try_emplace(index, *top);
  if (!inserted) {
    it->second = *top;
  } else if (memo_.size() > limits_.max_memo) {
    return Corrupt(absl::StrCat("memo exceeds the limit of ", limits_.max_memo, " entries"));
  }
  return absl::OkStatus();
}

absl::Status Machine::MemoGet(uint64_t index) {
  auto it = memo_.find(index);
  if (it == memo_.end()) return Corrupt(absl::StrCat("memo has no entry ", index));
  return Push(it->second);
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

absl::StatusOr<Item> Machine::MakeTuple(std::vector<Item> items) {
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
    t->items = std::move(items);
    t->depth = depth;
    return Item(std::shared_ptr<const ObjTuple>(std::move(t)));
  }
  ValuePtr tuple = NewContainer(Value::Tuple());
  for (Item& item : items) {
    WEIGHTD_RETURN_IF_ERROR(
        AddChild(tuple, std::get<ValuePtr>(item), IndexEdge(tuple->items().size())));
    tuple->mutable_items().push_back(std::move(std::get<ValuePtr>(item)));
  }
  return Item(std::move(tuple));
}

absl::Status Machine::Append(const ValuePtr& list, std::vector<Item> items,
                             absl::string_view opcode) {
  if (list->is(Value::Kind::kObject)) return RefuseOnObject(*list, opcode);
  if (!list->is(Value::Kind::kList)) {
    return Corrupt(absl::StrCat(opcode, " on a ", list->KindName(), ", not a list"));
  }
  for (Item& item : items) {
    const ValuePtr* v = AsValue(item);
    if (v == nullptr) return Refuse(absl::StrCat("a ", Describe(item), " cannot go in a list"));
    WEIGHTD_RETURN_IF_ERROR(AddChild(list, *v, IndexEdge(list->items().size())));
    list->mutable_items().push_back(*v);
  }
  return absl::OkStatus();
}

absl::Status Machine::SetItems(const ValuePtr& dict, std::vector<Item> items,
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
    absl::Status s = dict->SetItem(*k, *v);
    if (!s.ok()) return Corrupt(s.message());
  }
  return absl::OkStatus();
}

absl::Status Machine::AddItems(const ValuePtr& set, std::vector<Item> items,
                               absl::string_view opcode) {
  if (set->is(Value::Kind::kObject)) return RefuseOnObject(*set, opcode);
  if (!set->is(Value::Kind::kSet)) {
    return Corrupt(absl::StrCat(opcode, " on a ", set->KindName(), ", not a set"));
  }
  for (Item& item : items) {
    const ValuePtr* v = AsValue(item);
    if (v == nullptr) return Refuse(absl::StrCat("a ", Describe(item), " cannot go in a set"));
    WEIGHTD_RETURN_IF_ERROR(AddChild(set, *v, IndexEdge(set->items().size())));
    set->mutable_items().push_back(*v);
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

absl::Status Machine::Step(uint8_t op) {
  switch (op) {
    case 0x80: {  // PROTO
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t v, ReadUInt(1, "PROTO"));
      if (v > 5) return Corrupt(absl::StrCat("unsupported pickle protocol ", v));
      return absl::OkStatus();
    }
    case 0x95: {  // FRAME: an I/O hint; opcodes are read straight through it
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t n, ReadUInt(8, "FRAME"));
      return Need(n, "FRAME");
    }
    case '(':  // MARK
      if (marks_.size() >= limits_.max_stack) return Corrupt("too many MARKs");
      marks_.push_back(stack_.size());
      return absl::OkStatus();
    case '0':  // POP (Python pops the mark when the frame is empty)
      if (!marks_.empty() && stack_.size() == marks_.back()) {
        marks_.pop_back();
        return absl::OkStatus();
      }
      return Pop().status();
    case '1':  // POP_MARK
      return PopMark().status();
    case '2': {  // DUP
      WEIGHTD_ASSIGN_OR_RETURN(Item * top, Top());
      Item copy = *top;
      return Push(std::move(copy));
    }
    case 'N': return Push(Value::None());
    case 0x88: return Push(Value::Bool(true));
    case 0x89: return Push(Value::Bool(false));
    case 'I':
    case 'L': {  // INT, LONG (text)
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      WEIGHTD_ASSIGN_OR_RETURN(Item item, ParseIntLine(line, op == 'L'));
      return Push(std::move(item));
    }
    case 'J': {  // BININT
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t v, ReadUInt(4, "BININT"));
      return Push(Value::Int(static_cast<int32_t>(static_cast<uint32_t>(v))));
    }
    case 'K': {  // BININT1
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t v, ReadUInt(1, "BININT1"));
      return Push(Value::Int(static_cast<int64_t>(v)));
    }
    case 'M': {  // BININT2
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t v, ReadUInt(2, "BININT2"));
      return Push(Value::Int(static_cast<int64_t>(v)));
    }
    case 0x8a:    // LONG1
    case 0x8b: {  // LONG4
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view b,
                               ReadSized(op == 0x8a ? 1 : 4, op == 0x8a ? "LONG1" : "LONG4"));
      return Push(IntFromTwosComplement(b));
    }
    case 'F': {  // FLOAT (text)
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      double d;
      if (!absl::SimpleAtod(line, &d)) return Corrupt("bad FLOAT text");
      return Push(Value::Float(d));
    }
    case 'G': {  // BINFLOAT: big-endian IEEE 754
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view b, ReadBytes(8, "BINFLOAT"));
      return Push(Value::Float(BigEndianDouble(b)));
    }
    case 'S': {  // STRING: a quoted Python 2 str repr
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      if (line.size() < 2 || line.front() != line.back() ||
          (line.front() != '\'' && line.front() != '"')) {
        return Corrupt("the STRING opcode argument must be quoted");
      }
      return Push(Value::String(EscapeDecode(line.substr(1, line.size() - 2))));
    }
    // Python 2 str: torch.load decodes it with encoding='utf-8', giving str.
    case 'T': {  // BINSTRING
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view s, ReadSized(4, "BINSTRING"));
      return Push(Value::String(std::string(s)));
    }
    case 'U': {  // SHORT_BINSTRING
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view s, ReadSized(1, "SHORT_BINSTRING"));
      return Push(Value::String(std::string(s)));
    }
    case 'X':     // BINUNICODE
    case 0x8c:    // SHORT_BINUNICODE
    case 0x8d: {  // BINUNICODE8
      size_t width = op == 'X' ? 4 : op == 0x8c ? 1 : 8;
      WEIGHTD_ASSIGN_OR_RETURN(
          absl::string_view s,
          ReadSized(width, op == 'X' ? "BINUNICODE" : op == 0x8c ? "SHORT_BINUNICODE"
                                                                 : "BINUNICODE8"));
      return Push(Value::String(std::string(s)));
    }
    case 'B':     // BINBYTES
    case 'C':     // SHORT_BINBYTES
    case 0x8e: {  // BINBYTES8
      size_t width = op == 'B' ? 4 : op == 'C' ? 1 : 8;
      WEIGHTD_ASSIGN_OR_RETURN(
          absl::string_view s,
          ReadSized(width, op == 'B' ? "BINBYTES" : op == 'C' ? "SHORT_BINBYTES" : "BINBYTES8"));
      return Push(Value::Bytes(std::string(s)));
    }
    case ']': return Push(NewContainer(Value::List()));
    case '}': return Push(NewContainer(Value::Dict()));
    case 0x8f: return Push(NewContainer(Value::Set()));
    case ')': return Push(NewContainer(Value::Tuple()));
    case 'l': {  // LIST
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<Item> items, PopMark());
      ValuePtr list = NewContainer(Value::List());
      WEIGHTD_RETURN_IF_ERROR(Append(list, std::move(items), "LIST"));
      return Push(std::move(list));
    }
    case 'd': {  // DICT
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<Item> items, PopMark());
      ValuePtr dict = NewContainer(Value::Dict());
      WEIGHTD_RETURN_IF_ERROR(SetItems(dict, std::move(items), "DICT"));
      return Push(std::move(dict));
    }
    case 0x91: {  // FROZENSET
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<Item> items, PopMark());
      ValuePtr set = NewContainer(Value::Set());
      WEIGHTD_RETURN_IF_ERROR(AddItems(set, std::move(items), "FROZENSET"));
      return Push(std::move(set));
    }
    case 't': {  // TUPLE
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<Item> items, PopMark());
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(std::move(items)));
      return Push(std::move(tuple));
    }
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1..3
      size_t n = op - 0x84;
      std::vector<Item> items(n);
      for (size_t i = n; i-- > 0;) {
        WEIGHTD_ASSIGN_OR_RETURN(items[i], Pop());
      }
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(std::move(items)));
      return Push(std::move(tuple));
    }
    case 'a': {  // APPEND
      WEIGHTD_ASSIGN_OR_RETURN(Item item, Pop());
      WEIGHTD_ASSIGN_OR_RETURN(Item * target, Top());
      const ValuePtr* list = AsValue(*target);
      if (list == nullptr) return Refuse(absl::StrCat("APPEND on a ", Describe(*target)));
      std::vector<Item> items;
      items.push_back(std::move(item));
      return Append(*list, std::move(items), "APPEND");
    }
    case 'e':     // APPENDS
    case 'u':     // SETITEMS
    case 0x90: {  // ADDITEMS
      absl::string_view name = op == 'e' ? "APPENDS" : op == 'u' ? "SETITEMS" : "ADDITEMS";
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<Item> items, PopMark());
      WEIGHTD_ASSIGN_OR_RETURN(Item * target, Top());
      const ValuePtr* v = AsValue(*target);
      if (v == nullptr) return Refuse(absl::StrCat(name, " on a ", Describe(*target)));
      ValuePtr container = *v;
      if (op == 'e') return Append(container, std::move(items), name);
      if (op == 'u') return SetItems(container, std::move(items), name);
      return AddItems(container, std::move(items), name);
    }
    case 's': {  // SETITEM
      std::vector<Item> items(2);
      WEIGHTD_ASSIGN_OR_RETURN(items[1], Pop());
      WEIGHTD_ASSIGN_OR_RETURN(items[0], Pop());
      WEIGHTD_ASSIGN_OR_RETURN(Item * target, Top());
      const ValuePtr* v = AsValue(*target);
      if (v == nullptr) return Refuse(absl::StrCat("SETITEM on a ", Describe(*target)));
      ValuePtr dict = *v;
      return SetItems(dict, std::move(items), "SETITEM");
    }
    case 'g': {  // GET
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      uint64_t index;
      if (!absl::SimpleAtoi(line, &index)) return Corrupt("bad GET index");
      return MemoGet(index);
    }
    case 'h':
    case 'j': {  // BINGET, LONG_BINGET
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t index, ReadUInt(op == 'h' ? 1 : 4, "BINGET"));
      return MemoGet(index);
    }
    case 'p': {  // PUT
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      uint64_t index;
      if (!absl::SimpleAtoi(line, &index)) return Corrupt("bad PUT index");
      return MemoPut(index);
    }
    case 'q':
    case 'r': {  // BINPUT, LONG_BINPUT
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t index, ReadUInt(op == 'q' ? 1 : 4, "BINPUT"));
      return MemoPut(index);
    }
    case 0x94:  // MEMOIZE
      return MemoPut(memo_.size());
    case 'c': {  // GLOBAL
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view module, ReadLine());
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view name, ReadLine());
      WEIGHTD_ASSIGN_OR_RETURN(Item global, FindGlobal(module, name));
      return Push(std::move(global));
    }
    case 0x93: {  // STACK_GLOBAL
      WEIGHTD_ASSIGN_OR_RETURN(ValuePtr name, PopValue("STACK_GLOBAL"));
      WEIGHTD_ASSIGN_OR_RETURN(ValuePtr module, PopValue("STACK_GLOBAL"));
      if (!name->is(Value::Kind::kString) || !module->is(Value::Kind::kString)) {
        return Corrupt("STACK_GLOBAL needs two str");
      }
      WEIGHTD_ASSIGN_OR_RETURN(Item global, FindGlobal(module->str(), name->str()));
      return Push(std::move(global));
    }
    case 'i': {  // INST: module, name, then the arguments since MARK
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view module, ReadLine());
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view name, ReadLine());
      WEIGHTD_ASSIGN_OR_RETURN(Item cls, FindGlobal(module, name));
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<Item> args, PopMark());
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(std::move(args)));
      WEIGHTD_ASSIGN_OR_RETURN(Item result, Call(cls, tuple, "INST"));
      return Push(std::move(result));
    }
    case 'o': {  // OBJ: class and arguments since MARK
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<Item> items, PopMark());
      if (items.empty()) return Corrupt("OBJ without a class");
      Item cls = std::move(items.front());
      items.erase(items.begin());
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(std::move(items)));
      WEIGHTD_ASSIGN_OR_RETURN(Item result, Call(cls, tuple, "OBJ"));
      return Push(std::move(result));
    }
    case 'R':     // REDUCE
    case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); the allowlisted classes agree
      WEIGHTD_ASSIGN_OR_RETURN(Item args, Pop());
      WEIGHTD_ASSIGN_OR_RETURN(Item fn, Pop());
      WEIGHTD_ASSIGN_OR_RETURN(Item result, Call(fn, args, op == 'R' ? "REDUCE" : "NEWOBJ"));
      return Push(std::move(result));
    }
    case 0x92: {  // NEWOBJ_EX: cls, args, kwargs
      WEIGHTD_ASSIGN_OR_RETURN(ValuePtr kwargs, PopValue("NEWOBJ_EX"));
      WEIGHTD_ASSIGN_OR_RETURN(Item args, Pop());
      WEIGHTD_ASSIGN_OR_RETURN(Item cls, Pop());
      if (!kwargs->is(Value::Kind::kDict) || !kwargs->entries().empty()) {
        return Refuse("NEWOBJ_EX with keyword arguments is not supported");
      }
      WEIGHTD_ASSIGN_OR_RETURN(Item result, Call(cls, args, "NEWOBJ_EX"));
      return Push(std::move(result));
    }
    case 'b': {  // BUILD
      WEIGHTD_ASSIGN_OR_RETURN(Item state, Pop());
      WEIGHTD_ASSIGN_OR_RETURN(Item * inst, Top());
      return Build(*inst, state);
    }
    case 'Q': {  // BINPERSID
      WEIGHTD_ASSIGN_OR_RETURN(Item pid, Pop());
      WEIGHTD_ASSIGN_OR_RETURN(Item storage, PersistentLoad(pid));
      return Push(std::move(storage));
    }
    case 'P': {  // PERSID: a text id, which torch never writes
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      return Corrupt(absl::StrCat("unsupported text persistent id '",
                                  line.substr(0, std::min<size_t>(line.size(), 40)), "'"));
    }
    case 0x82:
    case 0x83:
    case 0x84:  // EXT1/2/4: the copyreg extension registry looks names up
      return Refuse("pickle extension codes (EXT1/EXT2/EXT4) are not allowed");
    case 0x96:
    case 0x97:
    case 0x98:
      return Corrupt(absl::StrFormat(
          "pickle protocol 5 opcode 0x%02x (out-of-band buffers) is not supported", op));
    case 'V': {  // UNICODE (protocol 0)
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      std::string text;
      if (!RawUnicodeEscapeToUtf8(line, &text)) return Corrupt("bad UNICODE escape");
      return Push(Value::String(std::move(text)));
    }
    default:
      return Corrupt(absl::StrFormat("unknown pickle opcode 0x%02x", op));
  }
}

absl::StatusOr<ValuePtr> Machine::Run(size_t* consumed) {
  while (pos_ < bytes_.size()) {
    op_offset_ = pos_;
    uint8_t op = bytes_[pos_++];
    if (op == '.') {  // STOP
      WEIGHTD_ASSIGN_OR_RETURN(Item result, Pop());
      const ValuePtr* v = AsValue(result);
      if (v == nullptr) return Refuse(absl::StrCat("pickle result is a ", Describe(result)));
      if (consumed != nullptr) *consumed = pos_;
      return *v;
    }
    WEIGHTD_RETURN_IF_ERROR(Step(op));
  }
  op_offset_ = pos_;
  return Corrupt("truncated pickle: no STOP opcode");
}

}  // namespace pickle_internal

absl::StatusOr<ValuePtr> Unpickle(absl::Span<const uint8_t> bytes, absl::string_view what,
                                  const StorageLoader& load_storage,
                                  const UnpicklerLimits& limits, size_t* consumed,
                                  PickleMode mode) {
  using pickle_internal::Machine;
  absl::StatusOr<ValuePtr> data = absl::UnknownError("not run");
  if (mode != PickleMode::kWholeModel) {
    Machine machine(bytes, what, load_storage, limits, PickleMode::kData);
    data = machine.Run(consumed);
    if (mode == PickleMode::kData || data.ok() || !machine.refused_global()) return data;
  }
  // A second pass over the same bytes, same limits; the loader is asked for
  // the same storages again (readers deduplicate by key).
  Machine machine(bytes, what, load_storage, limits, PickleMode::kWholeModel);
  size_t whole_consumed = 0;
  absl::StatusOr<ValuePtr> whole = machine.Run(&whole_consumed);
  if (mode == PickleMode::kWholeModel ||
      (whole.ok() ? machine.saw_module() : machine.made_objects())) {
    if (whole.ok() && consumed != nullptr) *consumed = whole_consumed;
    return whole;
  }
  // Not a whole-model pickle: the data error stands, exactly as under kData.
  return data;
}

}  // namespace weightd
