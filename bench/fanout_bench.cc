// fanout_bench: one of N client processes (bench/fanout.sh) that each load a
// model into a LibTorch module of their own, all at once; or, with
// --memcpy_gib, the cost of copying memory on this machine.
//
//   fanout_bench --target T --model M --go FILE   set up (channel connected,
//       module built from the manifest, pages touched), print "ready", wait
//       for FILE to exist, Load once, print "RESULT load_s SECONDS BYTES"
//   fanout_bench --memcpy_gib 1   "RESULT memcpy_s_per_gib SECONDS" (best of 5)
#include <sys/stat.h>
#include <torch/nn/module.h>
#include <torch/types.h>
#include <weightd/client.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/flags.h"
#include "bench/bench_module.h"

namespace {

using weightd::bench::Flag;

using Clock = std::chrono::steady_clock;

int Memcpy(double gib) {
  const size_t n = static_cast<size_t>(gib * (1ull << 30));
  std::vector<char> a(n, 1), b(n, 2);  // both touched: no page faults timed
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    std::memcpy(b.data(), a.data(), n);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::printf("RESULT memcpy_s_per_gib %.6f\n", best / gib);
  return b[n / 2] == 1 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (const std::string gib = Flag(argc, argv, "memcpy_gib", ""); !gib.empty()) {
    return Memcpy(std::atof(gib.c_str()));
  }
  const std::string model = Flag(argc, argv, "model", "m256");
  const std::string go = Flag(argc, argv, "go", "");
  weightd::ClientOptions options;
  options.target = Flag(argc, argv, "target", "127.0.0.1:50051");
  weightd::Client client(options);
  absl::StatusOr<weightd::Manifest> manifest =
      client.GetManifest(model, 0, "", weightd::ManifestChecksums::kNone);
  if (!manifest.ok()) {
    std::fprintf(stderr, "GetManifest: %s\n", manifest.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<weightd::bench::Node> root =
      weightd::bench::BuildModule(*manifest, manifest->tensors.size());
  uint64_t bytes = 0;
  for (const weightd::ManifestTensor& t : manifest->tensors) bytes += t.nbytes;
  std::printf("ready\n");
  std::fflush(stdout);
  struct stat st;
  while (!go.empty() && stat(go.c_str(), &st) != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto t0 = Clock::now();
  absl::StatusOr<weightd::LoadReport> r = client.Load(*root, model);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "Load: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::printf("RESULT load_s %.6f %llu\n", s, static_cast<unsigned long long>(bytes));
  return 0;
}
