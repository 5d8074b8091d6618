// The allowlist of the restricted unpickler: which globals a pickle may name
// and what REDUCE / NEWOBJ / BUILD / BINPERSID do with them. Modelled on
// torch/_weights_only_unpickler.py; nothing here calls out by name.
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/format/pickle/unpickler_internal.h"
#include "core/util/status_macros.h"

namespace weightd {
namespace pickle_internal {
namespace {

std::shared_ptr<const GlobalRef> MakeGlobal(GlobalKind kind, std::string name,
                                            DType dtype = DType::kFloat32) {
  auto g = std::make_shared<GlobalRef>();
  g->kind = kind;
  g->dtype = dtype;
  g->name = std::move(name);
  return g;
}

bool IsTensorRebuild(GlobalKind kind) {
  return kind == GlobalKind::kRebuildTensorV2 || kind == GlobalKind::kRebuildTensorV3 ||
         kind == GlobalKind::kRebuildTensor ||
         kind == GlobalKind::kRebuildParameter || kind == GlobalKind::kRebuildParameterWithState;
}

// latin-1 encoding of a UTF-8 string (what _codecs.encode(s, 'latin1') gives
// for the protocol-2 form of bytes). Fails on code points above U+00FF.
bool Latin1FromUtf8(absl::string_view utf8, std::string* out) {
  out->clear();
  for (size_t i = 0; i < utf8.size(); ++i) {
    uint8_t c = static_cast<uint8_t>(utf8[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if ((c & 0xe0) == 0xc0 && i + 1 < utf8.size()) {
      uint32_t cp = ((c & 0x1f) << 6) | (static_cast<uint8_t>(utf8[i + 1]) & 0x3f);
      if (cp > 0xff || (static_cast<uint8_t>(utf8[i + 1]) & 0xc0) != 0x80) return false;
      out->push_back(static_cast<char>(cp));
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<Item> Machine::FindGlobal(absl::string_view module, absl::string_view name) {
  // Protocol 2 writes Python 3's builtins as __builtin__ (fix_imports).
  if (module == "__builtin__") module = "builtins";
  std::string full = absl::StrCat(module, ".", name);
  if (module == "collections" && name == "OrderedDict") {
    return Item(MakeGlobal(GlobalKind::kOrderedDict, full));
  }
  if (module == "torch._utils") {
    if (name == "_rebuild_tensor_v2") return Item(MakeGlobal(GlobalKind::kRebuildTensorV2, full));
    if (name == "_rebuild_tensor_v3") return Item(MakeGlobal(GlobalKind::kRebuildTensorV3, full));
    if (name == "_rebuild_tensor") return Item(MakeGlobal(GlobalKind::kRebuildTensor, full));
    if (name == "_rebuild_parameter") {
      return Item(MakeGlobal(GlobalKind::kRebuildParameter, full));
    }
    if (name == "_rebuild_parameter_with_state") {
      return Item(MakeGlobal(GlobalKind::kRebuildParameterWithState, full));
    }
  }
  if (module == "torch._tensor" && name == "_rebuild_from_type_v2") {
    return Item(MakeGlobal(GlobalKind::kRebuildFromTypeV2, full));
  }
  if (module == "torch.nn.parameter" && name == "Parameter") {
    return Item(MakeGlobal(GlobalKind::kParameterClass, full));
  }
  if ((module == "torch" || module == "torch._tensor") && name == "Tensor") {
    return Item(MakeGlobal(GlobalKind::kTensorClass, full));
  }
  // torch >= 2.1 pickles the storage of a _rebuild_tensor_v3 tensor as
  // torch.storage.UntypedStorage (numel in bytes); torch.UntypedStorage is
  // the same class.
  if ((module == "torch.storage" || module == "torch") && name == "UntypedStorage") {
    auto g = std::make_shared<GlobalRef>();
    g->kind = GlobalKind::kStorageType;
    g->dtype = DType::kUInt8;
    g->untyped = true;
    g->name = full;
    return Item(std::shared_ptr<const GlobalRef>(std::move(g)));
  }
  if (module == "torch") {
    if (name == "Size") return Item(MakeGlobal(GlobalKind::kTorchSize, full));
    if (name == "device") return Item(MakeGlobal(GlobalKind::kTorchDevice, full));
    if (std::optional<DType> dtype = DTypeFromStorageType(name)) {
      return Item(MakeGlobal(GlobalKind::kStorageType, full, *dtype));
    }
    // torch.float32, torch.half...: the dtype object itself.
    if (name.find('.') == absl::string_view::npos && !name.empty() && name[0] != '_') {
      absl::StatusOr<DType> dtype = ParseDType(name);
      if (dtype.ok()) return Item(Value::DTypeValue(*dtype));
    }
  }
  // torch.save of torch.__version__ (trainers store it in checkpoints). It is a
  // str subclass whose NEWOBJ takes the version text; it becomes that string.
  // torch's weights_only unpickler refuses it; nothing is executed here, and
  // refusing would lose the weights over a version string.
  if (module == "torch.torch_version" && name == "TorchVersion") {
    return Item(MakeGlobal(GlobalKind::kTorchVersion, full));
  }
  if (module == "_codecs" && name == "encode") {
    return Item(MakeGlobal(GlobalKind::kCodecsEncode, full));
  }
  if (module == "builtins") {
    if (name == "set") return Item(MakeGlobal(GlobalKind::kSet, full));
    if (name == "frozenset") return Item(MakeGlobal(GlobalKind::kFrozenSet, full));
    if (name == "bytearray") return Item(MakeGlobal(GlobalKind::kByteArray, full));
  }
  // Whole-model pickles name their classes (and functools.partial etc.,
  // which CallRecorded knows); the name is kept, never looked up.
  if (mode_ == PickleMode::kWholeModel) return Item(Value::Global(std::move(full)));
  refused_global_ = true;
  return Refuse(absl::StrCat("unpickler refuses global ", full,
                             " (not in the allowlist of checkpoint types)"));
}

absl::StatusOr<Item> Machine::Call(const Item& callable, const Item& args,
                                   absl::string_view opcode) {
  if (const ValuePtr* v = AsValue(callable); v != nullptr && (*v)->is(Value::Kind::kGlobal)) {
    return CallRecorded(**v, args, opcode);
  }
  const GlobalRef* fn = AsGlobal(callable);
  if (fn == nullptr) {
    return Refuse(absl::StrCat(opcode, " calls a ", Describe(callable), ", not a global"));
  }
  if (const ObjTuple* t = AsObjTuple(args)) return CallGlobal(*fn, t->items);
  const ValuePtr* v = AsValue(args);
  if (v == nullptr || !(*v)->is(Value::Kind::kTuple)) {
    return Corrupt(absl::StrCat(opcode, " arguments of ", fn->name, " are a ", Describe(args),
                                ", not a tuple"));
  }
  std::vector<Item> items((*v)->items().begin(), (*v)->items().end());
  return CallGlobal(*fn, items);
}

absl::StatusOr<Item> Machine::CallGlobal(const GlobalRef& fn, absl::Span<const Item> args) {
  auto bad_args = [&]() {
    return Corrupt(absl::StrCat("bad arguments to ", fn.name, " (", args.size(), " given)"));
  };
  switch (fn.kind) {
    case GlobalKind::kOrderedDict: {
      ValuePtr dict = NewContainer(Value::Dict());
      if (args.empty()) return Item(dict);
      if (args.size() != 1) return bad_args();
      const ValuePtr* src = AsValue(args[0]);
      if (src != nullptr && (*src)->is(Value::Kind::kDict)) {  // OrderedDict(other_dict)
        std::vector<Item> kv;
        for (const auto& [k, v] : (*src)->entries()) {
          kv.push_back(k);
          kv.push_back(v);
        }
        WEIGHTD_RETURN_IF_ERROR(SetItems(dict, absl::MakeSpan(kv), fn.name));
        return Item(dict);
      }
      // Protocol 0/1 form: OrderedDict([[key, value], ...]).
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<ValuePtr> pairs, Iterable(args[0], fn.name));
      std::vector<Item> kv;
      for (const ValuePtr& pair : pairs) {
        if (!(pair->is(Value::Kind::kList) || pair->is(Value::Kind::kTuple)) ||
            pair->items().size() != 2) {
          return Corrupt(absl::StrCat(fn.name, " needs (key, value) pairs"));
        }
        kv.push_back(pair->items()[0]);
        kv.push_back(pair->items()[1]);
      }
      WEIGHTD_RETURN_IF_ERROR(SetItems(dict, absl::MakeSpan(kv), fn.name));
      return Item(dict);
    }
    case GlobalKind::kSet:
    case GlobalKind::kFrozenSet: {
      ValuePtr set = NewContainer(Value::Set());
      if (args.empty()) return Item(set);
      if (args.size() != 1) return bad_args();
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<ValuePtr> items, Iterable(args[0], fn.name));
      std::vector<Item> members(items.begin(), items.end());
      WEIGHTD_RETURN_IF_ERROR(AddItems(set, absl::MakeSpan(members),
                                       fn.name));
      return Item(set);
    }
    case GlobalKind::kTorchSize: {
      if (args.empty()) return Item(NewContainer(Value::Tuple()));
      if (args.size() != 1) return bad_args();
      WEIGHTD_ASSIGN_OR_RETURN(std::vector<int64_t> dims, IntTuple(args[0], fn.name));
      ValuePtr tuple = NewContainer(Value::Tuple());
      for (int64_t d : dims) tuple->mutable_items().push_back(Value::Int(d));
      return Item(tuple);
    }
    case GlobalKind::kTorchDevice: {
      if (args.empty() || args.size() > 2) return bad_args();
      WEIGHTD_ASSIGN_OR_RETURN(std::string type, StrArg(args[0], fn.name));
      if (args.size() == 2) {
        const ValuePtr* index = AsValue(args[1]);
        if (index != nullptr && (*index)->is(Value::Kind::kInt)) {
          absl::StrAppend(&type, ":", (*index)->int_value());
        } else if (index == nullptr || !(*index)->is(Value::Kind::kNone)) {
          return bad_args();
        }
      }
      return Item(Value::Device(std::move(type)));
    }
    case GlobalKind::kCodecsEncode:
    case GlobalKind::kByteArray: {
      if (args.empty() && fn.kind == GlobalKind::kByteArray) return Item(Value::Bytes(""));
      if (args.size() == 1 && fn.kind == GlobalKind::kByteArray) {
        const ValuePtr* b = AsValue(args[0]);
        if (b != nullptr && (*b)->is(Value::Kind::kBytes)) return Item(Value::Bytes((*b)->str()));
        return bad_args();
      }
      if (args.size() != 2) return bad_args();
      WEIGHTD_ASSIGN_OR_RETURN(std::string text, StrArg(args[0], fn.name));
      WEIGHTD_ASSIGN_OR_RETURN(std::string encoding, StrArg(args[1], fn.name));
      if (encoding == "latin1" || encoding == "latin-1" || encoding == "iso-8859-1") {
        std::string out;
        if (!Latin1FromUtf8(text, &out)) {
          return Corrupt(absl::StrCat(fn.name, ": text is not latin-1"));
        }
        return Item(Value::Bytes(std::move(out)));
      }
      if (encoding == "utf-8" || encoding == "utf8") return Item(Value::Bytes(std::move(text)));
      return Refuse(absl::StrCat(fn.name, " with encoding '", encoding, "' is not supported"));
    }
    case GlobalKind::kTorchVersion: {
      if (args.size() != 1) return bad_args();
      WEIGHTD_ASSIGN_OR_RETURN(std::string text, StrArg(args[0], fn.name));
      return Item(Value::String(std::move(text)));
    }
    case GlobalKind::kRebuildTensorV2:
    case GlobalKind::kRebuildTensorV3:
    case GlobalKind::kRebuildTensor:
      return RebuildTensor(fn, args);
    case GlobalKind::kRebuildParameter:
    case GlobalKind::kRebuildParameterWithState:
      return RebuildParameter(fn, args);
    case GlobalKind::kRebuildFromTypeV2:
      return RebuildFromType(args);
    case GlobalKind::kStorageType:
      return Refuse(absl::StrCat(fn.name, " may only appear inside a persistent id"));
    case GlobalKind::kParameterClass:
    case GlobalKind::kTensorClass:
      return Refuse(absl::StrCat(fn.name, " may only appear inside _rebuild_from_type_v2"));
  }
  return bad_args();
}

absl::StatusOr<Item> Machine::RebuildTensor(const GlobalRef& fn, absl::Span<const Item> args) {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  //                    backward_hooks[, metadata]); _rebuild_tensor has the first 4;
  // _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad,
  //                    backward_hooks, dtype[, metadata]) (torch/_utils.py).
  const bool v2 = fn.kind == GlobalKind::kRebuildTensorV2;
  const bool v3 = fn.kind == GlobalKind::kRebuildTensorV3;
  const bool arity_ok = v3   ? (args.size() == 7 || args.size() == 8)
                        : v2 ? (args.size() == 6 || args.size() == 7)
                             : args.size() == 4;
  if (!arity_ok) {
    return Corrupt(absl::StrCat("bad arguments to ", fn.name, " (", args.size(), " given)"));
  }
  const StorageRef* storage = AsStorage(args[0]);
  if (storage == nullptr) {
    return Corrupt(absl::StrCat(fn.name, " needs a storage, got a ", Describe(args[0])));
  }
  TensorRecord t;
  t.dtype = storage->dtype;
  t.storage = storage->storage;
  int64_t base_offset = storage->offset;
  if (v3) {
    const ValuePtr* dtype = AsValue(args[6]);
    if (dtype == nullptr || !(*dtype)->is(Value::Kind::kDType)) {
      return Corrupt(absl::StrCat(fn.name, ": dtype must be a torch dtype, not a ",
                                  Describe(args[6])));
    }
    t.dtype = (*dtype)->dtype();
    if (storage->untyped != nullptr) {
      // Type the byte storage now: the loader sees the tensor's dtype, so
      // views of one storage share it and a second dtype is refused there.
      StorageRequest request = *storage->untyped;
      const int64_t item = static_cast<int64_t>(DTypeSize(t.dtype));
      if (request.numel % item != 0) {
        return Corrupt(absl::StrCat(fn.name, ": untyped storage '", request.key, "' of ",
                                    request.numel, " bytes is no whole number of ",
                                    DTypeName(t.dtype), " elements"));
      }
      request.dtype = t.dtype;
      request.numel /= item;
      request.untyped = true;
      absl::StatusOr<std::shared_ptr<const Storage>> typed = loader_(request);
      if (!typed.ok()) return typed.status();
      if (*typed == nullptr) return Corrupt(absl::StrCat("no storage for key '", request.key, "'"));
      t.storage = *std::move(typed);
      base_offset = 0;
    } else if (storage->dtype != t.dtype) {
      // torch would reinterpret a typed storage's bytes; no writer does that.
      return Refuse(absl::StrCat(fn.name, " of dtype ", DTypeName(t.dtype), " over a ",
                                 DTypeName(storage->dtype), " storage is not supported"));
    }
  } else if (storage->untyped != nullptr) {
    // torch's _rebuild_tensor needs storage.dtype, which UntypedStorage lacks.
    return Corrupt(absl::StrCat(fn.name, " needs a typed storage, got torch.UntypedStorage"));
  }
  WEIGHTD_ASSIGN_OR_RETURN(int64_t offset, IntArg(args[1], "storage_offset"));
  if (offset < 0 || __builtin_add_overflow(offset, base_offset, &t.storage_offset)) {
    return Corrupt(absl::StrCat(fn.name, ": bad storage_offset ", offset));
  }
  WEIGHTD_ASSIGN_OR_RETURN(t.shape, IntTuple(args[2], "size"));
  WEIGHTD_ASSIGN_OR_RETURN(t.strides, IntTuple(args[3], "stride"));
  if (t.shape.size() != t.strides.size()) {
    return Corrupt(absl::StrCat(fn.name, ": size has ", t.shape.size(), " dims but stride has ",
                                t.strides.size()));
  }
  if (v2 || v3) {
    WEIGHTD_ASSIGN_OR_RETURN(t.requires_grad, BoolArg(args[4], "requires_grad"));
    // backward_hooks and metadata carry no tensor data; torch itself drops
    // the hooks on load.
  }
  return Item(Value::Tensor(std::move(t)));
}

absl::StatusOr<Item> Machine::RebuildParameter(const GlobalRef& fn,
                                               absl::Span<const Item> args) {
  // _rebuild_parameter(data, requires_grad, backward_hooks);
  // _rebuild_parameter_with_state adds the Parameter's __dict__, whose
  // Python attributes a Value cannot hold; they are dropped.
  size_t want = fn.kind == GlobalKind::kRebuildParameter ? 3 : 4;
  if (args.size() != want) {
    return Corrupt(absl::StrCat("bad arguments to ", fn.name, " (", args.size(), " given)"));
  }
  const ValuePtr* data = AsValue(args[0]);
  if (data == nullptr || !(*data)->is(Value::Kind::kTensor)) {
    return Corrupt(absl::StrCat(fn.name, " needs a tensor, got a ", Describe(args[0])));
  }
  TensorRecord t = (*data)->tensor();
  WEIGHTD_ASSIGN_OR_RETURN(t.requires_grad, BoolArg(args[1], "requires_grad"));
  t.is_parameter = true;
  if (want == 4 && !IsAttributeState(args[3])) {
    return Corrupt(absl::StrCat(fn.name, ": state is a ", Describe(args[3])));
  }
  return Item(Value::Tensor(std::move(t)));
}

absl::StatusOr<Item> Machine::RebuildFromType(absl::Span<const Item> args) {
  // torch._tensor._rebuild_from_type_v2(func, type, args, state): func(*args),
  // then as_subclass(type) and the __dict__ state (dropped, see above).
  if (args.size() != 4) {
    return Corrupt(absl::StrCat("bad arguments to torch._tensor._rebuild_from_type_v2 (",
                                args.size(), " given)"));
  }
  const GlobalRef* func = AsGlobal(args[0]);
  if (func == nullptr || !IsTensorRebuild(func->kind)) {
    return Refuse(absl::StrCat("_rebuild_from_type_v2 with function ", Describe(args[0])));
  }
  const GlobalRef* type = AsGlobal(args[1]);
  if (type == nullptr ||
      (type->kind != GlobalKind::kParameterClass && type->kind != GlobalKind::kTensorClass)) {
    return Refuse(absl::StrCat("_rebuild_from_type_v2 with type ", Describe(args[1])));
  }
  WEIGHTD_ASSIGN_OR_RETURN(Item result, Call(args[0], args[2], "_rebuild_from_type_v2"));
  if (!IsAttributeState(args[3])) {
    return Corrupt(absl::StrCat("_rebuild_from_type_v2: state is a ", Describe(args[3])));
  }
  if (type->kind == GlobalKind::kParameterClass) {
    TensorRecord t = std::get<ValuePtr>(result)->tensor();
    t.is_parameter = true;
    return Item(Value::Tensor(std::move(t)));
  }
  return result;
}

absl::StatusOr<Item> Machine::PersistentLoad(const Item& pid) {
  // ('storage', torch.<T>Storage, key, location, numel[, view_metadata]).
  // Legacy whole-model files name each module class as ('module', cls,
  // source_file, source); torch.load compares the source with the class's
  // and returns cls. The source is never looked at, let alone run.
  if (const ValuePtr* v = AsValue(pid); v != nullptr && (*v)->is(Value::Kind::kTuple) &&
                                        (*v)->items().size() == 4 &&
                                        (*v)->items()[0]->is(Value::Kind::kString) &&
                                        (*v)->items()[0]->str() == "module") {
    if (mode_ == PickleMode::kWholeModel && (*v)->items()[1]->is(Value::Kind::kGlobal)) {
      return Item((*v)->items()[1]);
    }
    return Corrupt("unsupported 'module' persistent id");
  }
  const ObjTuple* t = AsObjTuple(pid);
  if (t == nullptr || (t->items.size() != 5 && t->items.size() != 6)) {
    return Corrupt(absl::StrCat("unsupported persistent id (a ", Describe(pid), ")"));
  }
  absl::Span<const Item> f = t->items;
  WEIGHTD_ASSIGN_OR_RETURN(std::string tag, StrArg(f[0], "persistent id"));
  if (tag != "storage") return Corrupt(absl::StrCat("unsupported persistent id '", tag, "'"));
  const GlobalRef* type = AsGlobal(f[1]);
  if (type == nullptr || type->kind != GlobalKind::kStorageType) {
    return Corrupt(absl::StrCat("persistent id names a ", Describe(f[1]), ", not a storage type"));
  }
  StorageRequest request;
  request.dtype = type->dtype;
  const ValuePtr* key = AsValue(f[2]);
  if (key != nullptr && (*key)->is(Value::Kind::kInt)) {
    request.key = absl::StrCat((*key)->int_value());
  } else {
    WEIGHTD_ASSIGN_OR_RETURN(request.key, StrArg(f[2], "storage key"));
  }
  WEIGHTD_ASSIGN_OR_RETURN(request.location, StrArg(f[3], "storage location"));
  WEIGHTD_ASSIGN_OR_RETURN(request.numel, IntArg(f[4], "storage numel"));
  if (request.numel < 0) return Corrupt(absl::StrCat("negative storage numel ", request.numel));

  auto ref = std::make_shared<StorageRef>();
  ref->dtype = request.dtype;
  ref->numel = request.numel;
  if (type->untyped) {
    // Typed (and loaded) by the _rebuild_tensor_v3 that uses it.
    if (f.size() == 6) {
      const ValuePtr* view = AsValue(f[5]);
      if (view == nullptr || !(*view)->is(Value::Kind::kNone)) {
        return Corrupt("view metadata on an untyped storage");
      }
    }
    ref->untyped = std::make_unique<const StorageRequest>(std::move(request));
    return Item(std::shared_ptr<const StorageRef>(std::move(ref)));
  }
  if (f.size() == 6) {
    // torch < 1.6 legacy format: view_metadata (view_key, offset, view_size)
    // makes this storage a slice of the root storage; modern files put None.
    const ValuePtr* view = AsValue(f[5]);
    if (view == nullptr) return Corrupt("bad view metadata in persistent id");
    if (!(*view)->is(Value::Kind::kNone)) {
      if (!(*view)->is(Value::Kind::kTuple) || (*view)->items().size() != 3) {
        return Corrupt("unsupported view metadata in persistent id");
      }
      WEIGHTD_ASSIGN_OR_RETURN(int64_t offset, IntArg((*view)->items()[1], "view offset"));
      WEIGHTD_ASSIGN_OR_RETURN(int64_t size, IntArg((*view)->items()[2], "view size"));
      if (offset < 0 || size < 0 || offset > request.numel || size > request.numel - offset) {
        return Corrupt(absl::StrCat("storage view [", offset, ", +", size,
                                    ") lies outside its storage of ", request.numel,
                                    " elements"));
      }
      ref->offset = offset;
      ref->numel = size;
    }
  }
  absl::StatusOr<std::shared_ptr<const Storage>> storage = loader_(request);
  if (!storage.ok()) return storage.status();
  if (*storage == nullptr) {
    return Corrupt(absl::StrCat("no storage for key '", request.key, "'"));
  }
  ref->storage = *std::move(storage);
  return Item(std::shared_ptr<const StorageRef>(std::move(ref)));
}

absl::Status Machine::Build(const Item& inst, const Item& state) {
  const ValuePtr* v = AsValue(inst);
  if (v != nullptr && (*v)->is(Value::Kind::kObject)) return BuildObject(*v, state);
  if (v != nullptr && (*v)->is(Value::Kind::kDict)) {
    // OrderedDict's state is its instance __dict__ (a state_dict's
    // `_metadata`): Python attributes, not items, so they are not merged.
    if (IsAttributeState(state)) return absl::OkStatus();
    return Corrupt(absl::StrCat("BUILD on a dict with a ", Describe(state), " state"));
  }
  if (v != nullptr && (*v)->is(Value::Kind::kTensor)) {
    // Legacy tensors may get an empty state; a real one would call
    // Tensor.set_ and swap the data, which is not supported.
    if (IsEmptyState(state)) return absl::OkStatus();
    return Refuse("BUILD with non-empty tensor state is not supported");
  }
  return Corrupt(absl::StrCat("BUILD on a ", Describe(inst)));
}

bool Machine::IsEmptyState(const Item& state) const {
  const ValuePtr* v = AsValue(state);
  if (v == nullptr) return false;
  const Value& s = **v;
  if (s.is(Value::Kind::kNone)) return true;
  if (s.is(Value::Kind::kDict)) return s.entries().empty();
  if (s.is(Value::Kind::kTuple)) {
    for (const ValuePtr& item : s.items()) {
      if (!item->is(Value::Kind::kNone) &&
          !(item->is(Value::Kind::kDict) && item->entries().empty())) {
        return false;
      }
    }
    return true;
  }
  return false;
}

// None, a dict, or the (dict, slots dict) pair Python's BUILD accepts.
bool Machine::IsAttributeState(const Item& state) const {
  const ValuePtr* v = AsValue(state);
  if (v == nullptr) return false;
  const Value& s = **v;
  if (s.is(Value::Kind::kNone) || s.is(Value::Kind::kDict)) return true;
  if (s.is(Value::Kind::kTuple) && s.items().size() == 2) {
    for (const ValuePtr& item : s.items()) {
      if (!item->is(Value::Kind::kNone) && !item->is(Value::Kind::kDict)) return false;
    }
    return true;
  }
  return false;
}

absl::StatusOr<std::vector<int64_t>> Machine::IntTuple(const Item& item, absl::string_view what) {
  const ValuePtr* v = AsValue(item);
  if (v == nullptr || !((*v)->is(Value::Kind::kTuple) || (*v)->is(Value::Kind::kList))) {
    return Corrupt(absl::StrCat(what, " must be a tuple of ints, not a ", Describe(item)));
  }
  std::vector<int64_t> out;
  out.reserve((*v)->items().size());
  for (const ValuePtr& x : (*v)->items()) {
    if (!x->is(Value::Kind::kInt)) {
      return Corrupt(absl::StrCat(what, " must be a tuple of ints, has a ", x->KindName()));
    }
    out.push_back(x->int_value());
  }
  return out;
}

absl::StatusOr<int64_t> Machine::IntArg(const Item& item, absl::string_view what) {
  const ValuePtr* v = AsValue(item);
  if (v == nullptr || !((*v)->is(Value::Kind::kInt) || (*v)->is(Value::Kind::kBool))) {
    return Corrupt(absl::StrCat(what, " must be an int, not a ", Describe(item)));
  }
  return (*v)->int_value();
}

absl::StatusOr<bool> Machine::BoolArg(const Item& item, absl::string_view what) {
  const ValuePtr* v = AsValue(item);
  if (v == nullptr || !((*v)->is(Value::Kind::kInt) || (*v)->is(Value::Kind::kBool))) {
    return Corrupt(absl::StrCat(what, " must be a bool, not a ", Describe(item)));
  }
  return (*v)->int_value() != 0;
}

absl::StatusOr<std::string> Machine::StrArg(const Item& item, absl::string_view what) {
  const ValuePtr* v = AsValue(item);
  if (v == nullptr || !(*v)->is(Value::Kind::kString)) {
    return Corrupt(absl::StrCat(what, " must be a str, not a ", Describe(item)));
  }
  return (*v)->str();
}

absl::StatusOr<std::vector<ValuePtr>> Machine::Iterable(const Item& item,
                                                         absl::string_view what) {
  const ValuePtr* v = AsValue(item);
  if (v == nullptr || !((*v)->is(Value::Kind::kList) || (*v)->is(Value::Kind::kTuple) ||
                        (*v)->is(Value::Kind::kSet))) {
    return Corrupt(absl::StrCat(what, " needs a list, tuple or set, not a ", Describe(item)));
  }
  return (*v)->items();
}

}  // namespace pickle_internal
}  // namespace weightd
