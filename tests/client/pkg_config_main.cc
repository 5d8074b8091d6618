// Built by install_test.cmake against the installed prefix with nothing but
// `pkg-config --cflags --libs weightd` (or weightd-core, -DWEIGHTD_CORE_ONLY):
// the installed headers and libraries are enough for a non-CMake build.
#include <cstdio>

#ifdef WEIGHTD_CORE_ONLY
#include <weightd/client_core.h>
using ClientType = weightd::ClientCore;
#else
#include <torch/nn/modules/linear.h>
#include <weightd/client.h>
using ClientType = weightd::Client;
#endif

int main() {
  weightd::ClientOptions options;
  options.target = "127.0.0.1:1";  // nobody listens: the call must fail cleanly
  options.max_attempts = 1;
  options.deadline = absl::Seconds(5);
  ClientType client(options);
  absl::StatusOr<std::vector<weightd::ModelInfo>> models = client.ListModels();
  if (models.ok() || !absl::IsUnavailable(models.status())) {
    std::printf("expected UNAVAILABLE, got %s\n", models.status().ToString().c_str());
    return 1;
  }
#ifndef WEIGHTD_CORE_ONLY
  torch::nn::Linear linear(2, 3);
  absl::StatusOr<std::vector<weightd::TensorEntry>> entries = weightd::ModuleEntries(*linear);
  if (!entries.ok() || entries->size() != 2) {
    std::printf("ModuleEntries failed\n");
    return 1;
  }
#endif
  std::printf("ok\n");
  return 0;
}
