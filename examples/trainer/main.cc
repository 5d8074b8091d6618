// A small trainer that starts from pretrained weights served by weightd.
//
// The network wraps the LeNet of PyTorch's tutorial as `model` (so its names
// are "model.conv1.weight"...), with a new 5-class head. The served
// checkpoint has the plain LeNet names and a 10-class head: an add_prefix
// rule maps the names, and the head's shape mismatch is skipped, so the head
// keeps its fresh initialisation. Then a few SGD steps on random data.
//
//   trainer [--server HOST:PORT] [--model NAME] [--steps N]
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include <weightd/client.h>

namespace {

struct LeNetImpl : torch::nn::Module {
  explicit LeNetImpl(int64_t classes)
      : conv1(register_module("conv1", torch::nn::Conv2d(1, 6, 5))),
        conv2(register_module("conv2", torch::nn::Conv2d(6, 16, 5))),
        fc1(register_module("fc1", torch::nn::Linear(16 * 5 * 5, 120))),
        fc2(register_module("fc2", torch::nn::Linear(120, 84))),
        fc3(register_module("fc3", torch::nn::Linear(84, classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    namespace F = torch::nn::functional;
    x = F::max_pool2d(torch::relu(conv1(x)), F::MaxPool2dFuncOptions(2));
    x = F::max_pool2d(torch::relu(conv2(x)), F::MaxPool2dFuncOptions(2));
    x = torch::flatten(x, 1);
    x = torch::relu(fc1(x));
    x = torch::relu(fc2(x));
    return fc3(x);
  }

  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2, fc3;
};
TORCH_MODULE(LeNet);

struct ClassifierImpl : torch::nn::Module {
  explicit ClassifierImpl(int64_t classes) : model(register_module("model", LeNet(classes))) {}
  torch::Tensor forward(torch::Tensor x) { return model(x); }
  LeNet model;
};
TORCH_MODULE(Classifier);

std::string Flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string server = Flag(argc, argv, "server", "localhost:50051");
  const std::string model_name = Flag(argc, argv, "model", "classifier");
  const int steps = std::atoi(Flag(argc, argv, "steps", "5").c_str());

  torch::manual_seed(0);
  Classifier net(/*classes=*/5);

  weightd::Client client(weightd::ClientOptions{.target = server});
  weightd::LoadOptions options;
  options.rules = {weightd::AddPrefix("model.")};
  options.on_shape_mismatch = weightd::ShapePolicy::kSkip;
  absl::StatusOr<weightd::LoadReport> report = client.Load(*net, model_name, options);
  if (!report.ok()) {
    std::cerr << "trainer: loading " << model_name << " from " << server
              << " failed: " << report.status() << "\n";
    return 1;
  }
  std::cout << "loaded " << model_name << " v" << report->version << " from " << server << ": "
            << report->tensors << " tensors, " << report->bytes << " bytes in "
            << report->seconds * 1000 << " ms\n";
  for (const weightd::ShapeMismatch& m : report->mismatched) {
    std::cout << "  skipped (shape) " << m.key << ": checkpoint "
              << torch::IntArrayRef(m.source_shape) << ", model "
              << torch::IntArrayRef(m.target_shape) << "\n";
  }
  for (const std::string& key : report->missing_keys) std::cout << "  missing " << key << "\n";
  for (const std::string& key : report->unexpected_keys) {
    std::cout << "  unexpected " << key << "\n";
  }

  torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  const torch::Tensor images = torch::randn({16, 1, 32, 32});
  const torch::Tensor labels = torch::randint(0, 5, {16});
  for (int step = 1; step <= steps; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(images), labels);
    loss.backward();
    optimizer.step();
    std::cout << "step " << step << " loss " << loss.item<float>() << "\n";
  }
  return 0;
}
