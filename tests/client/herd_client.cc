// One member of herd_test.py's herd: a LibTorch program with its own module
// (`layers.I.weight`, TENSORS float32 vectors of NUMEL elements, as
// herd_test.py saves them with PyTorch) that makes one Client::Load with the
// default ClientOptions, as a trainer would at start-up.
//
//   herd_client TARGET MODEL TENSORS NUMEL
//
// Prints "ok SUM" (the sum of every loaded element, for the driver to check
// against PyTorch) and exits 0, or prints the status and exits 1.
#include <torch/nn/module.h>
#include <torch/types.h>
#include <weightd/client.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

class Layer : public torch::nn::Module {
 public:
  explicit Layer(int64_t numel) { weight = register_parameter("weight", torch::zeros({numel})); }
  torch::Tensor weight;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: herd_client TARGET MODEL TENSORS NUMEL\n");
    return 2;
  }
  const int tensors = std::atoi(argv[3]);
  const int64_t numel = std::atoll(argv[4]);
  torch::nn::Module module;
  auto layers = std::make_shared<torch::nn::Module>();
  std::vector<std::shared_ptr<Layer>> owned;
  for (int i = 0; i < tensors; ++i) {
    owned.push_back(std::make_shared<Layer>(numel));
    layers->register_module(std::to_string(i), owned.back());
  }
  module.register_module("layers", layers);

  weightd::ClientOptions options;
  options.target = argv[1];
  weightd::Client client(options);
  absl::StatusOr<weightd::LoadReport> report = client.Load(module, argv[2]);
  if (!report.ok()) {
    std::printf("error %s\n", report.status().ToString().c_str());
    return 1;
  }
  double sum = 0;
  for (const auto& layer : owned) sum += layer->weight.sum().item<double>();
  std::printf("ok %.9e\n", sum);
  return 0;
}
