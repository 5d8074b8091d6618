#include "core/format/pickle/pickler.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace weightd {
namespace {

// Python's pickler batches APPENDS/SETITEMS by 1000 items.
constexpr size_t kBatchSize = 1000;

class Writer {
 public:
  std::string Finish() { return std::move(out_); }

  void Op(char op) { out_.push_back(op); }
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void LE(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }

  void Int(int64_t v) {
    if (v >= 0 && v < 256) {
      Op('K');  // BININT1
      U8(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      Op('M');  // BININT2
      LE(static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      Op('J');  // BININT
      LE(static_cast<uint64_t>(static_cast<int32_t>(v)), 4);
    } else {
      // LONG1 with the minimal two's complement bytes, as Python writes it.
      std::string le;
      for (int i = 0; i < 8; ++i) le.push_back(static_cast<char>(static_cast<uint64_t>(v) >> (8 * i)));
      while (le.size() > 1) {
        uint8_t last = static_cast<uint8_t>(le.back());
        uint8_t prev = static_cast<uint8_t>(le[le.size() - 2]);
        if ((last == 0 && !(prev & 0x80)) || (last == 0xff && (prev & 0x80))) {
          le.pop_back();
        } else {
          break;
        }
      }
      Op('\x8a');
      U8(static_cast<uint8_t>(le.size()));
      out_ += le;
    }
  }

  void Str(absl::string_view s) {
    Op('X');  // BINUNICODE
    LE(s.size(), 4);
    out_.append(s.data(), s.size());
  }

  void Bool(bool v) { Op(v ? '\x88' : '\x89'); }

  void IntTuple(absl::Span<const int64_t> values) {
    static constexpr char kTupleN[] = {')', '\x85', '\x86', '\x87'};
    if (values.size() > 3) Op('(');
    for (int64_t v : values) Int(v);
    Op(values.size() > 3 ? 't' : kTupleN[values.size()]);
  }

  // Writes `module name` once and fetches it from the memo afterwards, as
  // Python's pickler does for a repeated object.
  void Global(absl::string_view module, absl::string_view name) {
    std::string key = absl::StrCat(module, "\n", name, "\n");
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      Get(it->second);
      return;
    }
    Op('c');
    out_ += key;
    memo_[key] = Put();
  }

  uint32_t Put() {
    uint32_t index = next_memo_++;
    if (index < 256) {
      Op('q');  // BINPUT
      U8(static_cast<uint8_t>(index));
    } else {
      Op('r');  // LONG_BINPUT
      LE(index, 4);
    }
    return index;
  }

  void Get(uint32_t index) {
    if (index < 256) {
      Op('h');  // BINGET
      U8(static_cast<uint8_t>(index));
    } else {
      Op('j');  // LONG_BINGET
      LE(index, 4);
    }
  }

  // The persistent id of a storage; later uses of the same key fetch the
  // loaded storage from the memo so that the tensors share it.
  void Storage(const PickleTensor& t) {
    auto it = storages_.find(t.storage_key);
    if (it != storages_.end()) {
      Get(it->second);
      return;
    }
    Op('(');
    Str("storage");
    if (HasLegacyStorageType(t.dtype)) {
      Global("torch", StorageTypeName(t.dtype));
      Str(t.storage_key);
      Str("cpu");
      Int(t.storage_numel);
    } else {
      // As torch >= 2.1 pickles dtypes without a <Type>Storage class: an
      // untyped storage counted in bytes, typed by _rebuild_tensor_v3.
      Global("torch.storage", "UntypedStorage");
      Str(t.storage_key);
      Str("cpu");
      Int(t.storage_numel * static_cast<int64_t>(DTypeSize(t.dtype)));
    }
    Op('t');
    Op('Q');  // BINPERSID
    storages_[t.storage_key] = Put();
  }

 private:
  std::string out_;
  uint32_t next_memo_ = 0;
  absl::flat_hash_map<std::string, uint32_t> memo_;
  absl::flat_hash_map<std::string, uint32_t> storages_;
};

}  // namespace

std::string PickleStateDict(absl::Span<const PickleTensor> tensors) {
  Writer w;
  w.Op('\x80');  // PROTO 2
  w.U8(2);
  w.Global("collections", "OrderedDict");
  w.Op(')');
  w.Op('R');
  w.Put();
  for (size_t start = 0; start < tensors.size(); start += kBatchSize) {
    w.Op('(');
    for (size_t i = start; i < tensors.size() && i < start + kBatchSize; ++i) {
      const PickleTensor& t = tensors[i];
      const bool v3 = !HasLegacyStorageType(t.dtype);
      w.Str(t.name);
      w.Global("torch._utils", v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
      w.Op('(');
      w.Storage(t);
      w.Int(t.storage_offset);
      w.IntTuple(t.shape);
      w.IntTuple(t.strides);
      w.Bool(t.requires_grad);
      w.Global("collections", "OrderedDict");  // backward_hooks
      w.Op(')');
      w.Op('R');
      if (v3) w.Global("torch", DTypeName(t.dtype));
      w.Op('t');
      w.Op('R');
    }
    w.Op('u');  // SETITEMS
  }
  w.Op('.');
  return w.Finish();
}

}  // namespace weightd
