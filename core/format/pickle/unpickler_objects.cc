// Whole-model pickles (torch.save(model), PickleMode::kWholeModel): the
// objects of classes outside the allowlist become inert records of their
// class name and pickled state. Nothing here imports, looks up or calls
// anything; the only calls a file may ask for are recorded, never made.
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/checkpoint/module_tree.h"
#include "core/format/pickle/unpickler_internal.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace pickle_internal {
namespace {

// functools.partial pickles as REDUCE(partial, (func,)) then BUILD with
// (func, args, keywords, __dict__) (torchvision's ViT keeps its norm_layer so).
constexpr char kPartial[] = "functools.partial";
// Protocols 0 and 1 instantiate with copyreg._reconstructor(cls, object, None)
// what protocol 2 does with NEWOBJ.
constexpr char kReconstructor[] = "copyreg._reconstructor";

bool IsDictOrNone(const Value& v) { return v.is(Value::Kind::kDict) || v.is(Value::Kind::kNone); }

}  // namespace

absl::Status Machine::RefuseOnObject(const Value& object, absl::string_view opcode) const {
  return Refuse(absl::StrCat(opcode, " on a ", object.str(),
                             " object is not supported: it would run the class's code"));
}

absl::StatusOr<Item> Machine::Instantiate(const std::string& class_name, ValuePtr args) {
  ValuePtr object = NewContainer(Value::Object(class_name, args));
  WEIGHTD_RETURN_IF_ERROR(AddChild(object, args, 2));
  made_objects_ = true;
  return Item(std::move(object));
}

absl::StatusOr<Item> Machine::CallRecorded(const Value& global, const Item& args,
                                           absl::string_view opcode) {
  const std::string& name = global.str();
  const ValuePtr* tuple = AsValue(args);
  if (tuple == nullptr || !(*tuple)->is(Value::Kind::kTuple)) {
    // A storage or an allowlisted global among the arguments: not a plain
    // instantiation, whatever the callable.
    return Refuse(absl::StrCat("unpickler refuses global ", name, ": ", opcode, " with a ",
                               Describe(args), " of arguments"));
  }
  const std::vector<ValuePtr>& items = (*tuple)->items();
  if (opcode == "NEWOBJ") return Instantiate(name, *tuple);  // cls.__new__(cls, *args)
  if (opcode == "REDUCE" && name == kPartial) {
    if (items.size() != 1 || !items[0]->is(Value::Kind::kGlobal)) {
      return Refuse(absl::StrCat(kPartial, " of a ",
                                 items.empty() ? "missing function" : Describe(items[0]),
                                 " is not supported"));
    }
    return Instantiate(name, *tuple);
  }
  if (opcode == "REDUCE" && name == kReconstructor) {
    // copyreg._reconstructor(cls, object, None) is object.__new__(cls); any
    // other base would call base.__new__ or base.__init__.
    if (items.size() == 3 && items[0]->is(Value::Kind::kGlobal) &&
        items[1]->is(Value::Kind::kGlobal) && items[1]->str() == "builtins.object" &&
        items[2]->is(Value::Kind::kNone)) {
      return Instantiate(items[0]->str(), NewContainer(Value::Tuple()));
    }
    return Refuse(absl::StrCat(kReconstructor, " is only supported as (cls, object, None)"));
  }
  return Refuse(absl::StrCat("unpickler refuses global ", name, ": ", opcode,
                             " would call it; a whole-model file may only instantiate classes"
                             " (not in the allowlist of checkpoint types)"));
}

absl::Status Machine::BuildObject(const ValuePtr& object, const Item& state) {
  if (!object->object_state()->is(Value::Kind::kNone)) {
    return Refuse(absl::StrCat("BUILD twice on a ", object->str(), " object"));
  }
  const ValuePtr* v = AsValue(state);
  bool ok = false;
  if (v != nullptr) {
    const Value& s = **v;
    const std::vector<ValuePtr>& items = s.items();
    if (object->str() == kPartial) {
      // (func, args, keywords, __dict__).
      ok = s.is(Value::Kind::kTuple) && items.size() == 4 && items[0]->is(Value::Kind::kGlobal) &&
           items[1]->is(Value::Kind::kTuple) && IsDictOrNone(*items[2]) && IsDictOrNone(*items[3]);
    } else {
      // The instance __dict__. (Python also takes a (__dict__, slots) pair,
      // but no torch.save(model) of torch 1.13 or 2.6 has one, so it stays
      // out.)
      ok = s.is(Value::Kind::kDict);
    }
  }
  if (!ok) {
    return Refuse(absl::StrCat("BUILD on a ", object->str(), " object with a ", Describe(state),
                               " state is not supported (it would call __setstate__)"));
  }
  WEIGHTD_RETURN_IF_ERROR(AddChild(object, *v, 2));
  object->set_object_state(*v);
  if (IsModule(*object)) saw_module_ = true;
  return absl::OkStatus();
}

}  // namespace pickle_internal
}  // namespace weightd
