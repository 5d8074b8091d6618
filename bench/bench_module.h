// A LibTorch module that mirrors a model's manifest (names, shapes, dtypes),
// for the benchmarks (load_bench.cc, gpu_load_bench.cc).
#ifndef WEIGHTD_BENCH_BENCH_MODULE_H_
#define WEIGHTD_BENCH_BENCH_MODULE_H_

#include <torch/nn/module.h>
#include <torch/types.h>
#include <weightd/client.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"

namespace weightd::bench {

// A module tree built from dotted names ("layer1.0.conv1.weight"): one plain
// Module per prefix, since register_parameter rejects dots.
class Node : public torch::nn::Module {
 public:
  std::shared_ptr<Node> Child(const std::string& name) {
    auto it = children_.find(name);
    if (it != children_.end()) return it->second;
    auto child = std::make_shared<Node>();
    register_module(name, child);
    children_[name] = child;
    return child;
  }
  void AddParameter(const std::string& name, torch::Tensor t) { register_parameter(name, t); }
  void AddBuffer(const std::string& name, torch::Tensor t) { register_buffer(name, t); }

 private:
  std::map<std::string, std::shared_ptr<Node>> children_;
};

// A module holding the first `count` tensors of the manifest, zeroed.
inline std::shared_ptr<Node> BuildModule(const Manifest& manifest, size_t count) {
  auto root = std::make_shared<Node>();
  for (size_t i = 0; i < count && i < manifest.tensors.size(); ++i) {
    const ManifestTensor& t = manifest.tensors[i];
    std::vector<std::string> parts = absl::StrSplit(t.name, '.');
    std::shared_ptr<Node> node = root;
    for (size_t j = 0; j + 1 < parts.size(); ++j) node = node->Child(parts[j]);
    // Written values: the load must overwrite them, and untouched pages would
    // make the first copy pay page faults the checkpoint path does not.
    torch::Tensor v =
        torch::empty(t.shape, torch::TensorOptions().dtype(ToScalarType(t.dtype).value()));
    v.zero_();
    const std::string& leaf = parts.back();
    bool buffer = !v.is_floating_point() || leaf.rfind("running_", 0) == 0;
    if (buffer) {
      node->AddBuffer(leaf, v);
    } else {
      node->AddParameter(leaf, v);
    }
  }
  return root;
}

}  // namespace weightd::bench

#endif  // WEIGHTD_BENCH_BENCH_MODULE_H_
