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
    case '1': {  // POP_MARK
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      DropFrom(mark);
      return absl::OkStatus();
    }
    case '2': {  // DUP
      WEIGHTD_ASSIGN_OR_RETURN(Item * top, Top());
      Item copy = *top;
      return Push(std::move(copy));
    }
    case 'N': return Push(None());
    case 0x88: return Push(Bool(true));
    case 0x89: return Push(Bool(false));
    case 'I':
    case 'L': {  // INT, LONG (text)
      WEIGHTD_ASSIGN_OR_RETURN(absl::string_view line, ReadLine());
      WEIGHTD_ASSIGN_OR_RETURN(Item item, ParseIntLine(line, op == 'L'));
      return Push(std::move(item));
    }
    case 'J': {  // BININT
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t v, ReadUInt(4, "BININT"));
      return Push(Int(static_cast<int32_t>(static_cast<uint32_t>(v))));
    }
    case 'K': {  // BININT1
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t v, ReadUInt(1, "BININT1"));
      return Push(Int(static_cast<int64_t>(v)));
    }
    case 'M': {  // BININT2
      WEIGHTD_ASSIGN_OR_RETURN(uint64_t v, ReadUInt(2, "BININT2"));
      return Push(Int(static_cast<int64_t>(v)));
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
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      ValuePtr list = NewContainer(Value::List());
      WEIGHTD_RETURN_IF_ERROR(Append(list, ItemsFrom(mark), "LIST"));
      DropFrom(mark);
      return Push(std::move(list));
    }
    case 'd': {  // DICT
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      ValuePtr dict = NewContainer(Value::Dict());
      WEIGHTD_RETURN_IF_ERROR(SetItems(dict, ItemsFrom(mark), "DICT"));
      DropFrom(mark);
      return Push(std::move(dict));
    }
    case 0x91: {  // FROZENSET
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      ValuePtr set = NewContainer(Value::Set());
      WEIGHTD_RETURN_IF_ERROR(AddItems(set, ItemsFrom(mark), "FROZENSET"));
      DropFrom(mark);
      return Push(std::move(set));
    }
    case 't': {  // TUPLE
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(ItemsFrom(mark)));
      DropFrom(mark);
      return Push(std::move(tuple));
    }
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1..3: the top n items, as if a MARK were below them
      size_t n = op - 0x84;
      size_t floor = marks_.empty() ? 0 : marks_.back();
      if (stack_.size() < floor + n) return Corrupt("stack underflow");
      size_t start = stack_.size() - n;
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(ItemsFrom(start)));
      DropFrom(start);
      return Push(std::move(tuple));
    }
    case 'a': {  // APPEND
      size_t floor = marks_.empty() ? 0 : marks_.back();
      if (stack_.size() < floor + 2) return Corrupt("stack underflow");
      size_t start = stack_.size() - 1;
      const ValuePtr* list = AsValue(stack_[start - 1]);
      if (list == nullptr) return Refuse(absl::StrCat("APPEND on a ", Describe(stack_[start - 1])));
      ValuePtr container = *list;
      WEIGHTD_RETURN_IF_ERROR(Append(container, ItemsFrom(start), "APPEND"));
      DropFrom(start);
      return absl::OkStatus();
    }
    case 'e':     // APPENDS
    case 'u':     // SETITEMS
    case 0x90: {  // ADDITEMS
      absl::string_view name = op == 'e' ? "APPENDS" : op == 'u' ? "SETITEMS" : "ADDITEMS";
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      WEIGHTD_ASSIGN_OR_RETURN(Item * target, Below(mark));
      const ValuePtr* v = AsValue(*target);
      if (v == nullptr) return Refuse(absl::StrCat(name, " on a ", Describe(*target)));
      ValuePtr container = *v;
      absl::Span<Item> items = ItemsFrom(mark);
      absl::Status added = op == 'e'   ? Append(container, items, name)
                           : op == 'u' ? SetItems(container, items, name)
                                       : AddItems(container, items, name);
      WEIGHTD_RETURN_IF_ERROR(added);
      DropFrom(mark);
      return absl::OkStatus();
    }
    case 's': {  // SETITEM
      size_t floor = marks_.empty() ? 0 : marks_.back();
      if (stack_.size() < floor + 3) return Corrupt("stack underflow");
      size_t start = stack_.size() - 2;
      const ValuePtr* v = AsValue(stack_[start - 1]);
      if (v == nullptr) return Refuse(absl::StrCat("SETITEM on a ", Describe(stack_[start - 1])));
      ValuePtr dict = *v;
      WEIGHTD_RETURN_IF_ERROR(SetItems(dict, ItemsFrom(start), "SETITEM"));
      DropFrom(start);
      return absl::OkStatus();
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
      return MemoPut(MemoSize());
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
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(ItemsFrom(mark)));
      DropFrom(mark);
      WEIGHTD_ASSIGN_OR_RETURN(Item result, Call(cls, tuple, "INST"));
      return Push(std::move(result));
    }
    case 'o': {  // OBJ: class and arguments since MARK
      WEIGHTD_ASSIGN_OR_RETURN(size_t mark, PopMark());
      if (stack_.size() == mark) return Corrupt("OBJ without a class");
      Item cls = std::move(stack_[mark]);
      WEIGHTD_ASSIGN_OR_RETURN(Item tuple, MakeTuple(ItemsFrom(mark + 1)));
      DropFrom(mark);
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
