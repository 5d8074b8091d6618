// load_bench: times weightd::Client::Load of one model into a LibTorch module
// that mirrors the model's manifest (names, shapes, dtypes), a 10% partial
// fetch, and N concurrent clients while watching the server's VmRSS.
// Driven by bench/run.sh; prints one "RESULT key value" line per figure so
// the script can parse it.
//
//   load_bench --target 127.0.0.1:PORT --model big --iters 3 \
//       [--clients 16] [--server_pid PID]
#include <torch/nn/module.h>
#include <torch/types.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "client/client.h"

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

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

std::shared_ptr<Node> BuildModule(const weightd::Manifest& manifest) {
  auto root = std::make_shared<Node>();
  for (const weightd::ManifestTensor& t : manifest.tensors) {
    std::vector<std::string> parts = absl::StrSplit(t.name, '.');
    std::shared_ptr<Node> node = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) node = node->Child(parts[i]);
    // Random values: the load must overwrite them, and untouched pages would
    // make the first copy pay page faults the checkpoint path does not.
    torch::Tensor v = torch::empty(t.shape, torch::TensorOptions().dtype(
                                                weightd::ToScalarType(t.dtype)));
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

long VmRssKiB(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

std::string Flag(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return def;
}

void Result(const std::string& key, double value) {
  std::printf("RESULT %s %.6f\n", key.c_str(), value);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string target = Flag(argc, argv, "target", "127.0.0.1:50051");
  const std::string model = Flag(argc, argv, "model", "big");
  const int iters = std::atoi(Flag(argc, argv, "iters", "3").c_str());
  const int clients = std::atoi(Flag(argc, argv, "clients", "0").c_str());
  const int server_pid = std::atoi(Flag(argc, argv, "server_pid", "0").c_str());

  weightd::ClientOptions copt;
  copt.target = target;
  weightd::Client client(copt);
  absl::StatusOr<weightd::Manifest> manifest = client.GetManifest(model);
  if (!manifest.ok()) {
    std::cerr << "GetManifest: " << manifest.status() << "\n";
    return 1;
  }
  uint64_t total_bytes = 0;
  for (const auto& t : manifest->tensors) total_bytes += t.nbytes;
  std::shared_ptr<Node> module = BuildModule(*manifest);
  Result("bytes", static_cast<double>(total_bytes));

  // Warm-up load: makes the server read and cache the model, so the timed
  // loads measure the serving path, not the first disk read.
  {
    absl::StatusOr<weightd::LoadReport> r = client.Load(*module, model, {});
    if (!r.ok()) {
      std::cerr << "Load: " << r.status() << "\n";
      return 1;
    }
  }
  double best = 1e30, sum = 0;
  for (int i = 0; i < iters; ++i) {
    auto t0 = Clock::now();
    absl::StatusOr<weightd::LoadReport> r = client.Load(*module, model, {});
    double s = Since(t0);
    if (!r.ok() || r->bytes != total_bytes) {
      std::cerr << "Load: " << r.status() << "\n";
      return 1;
    }
    best = std::min(best, s);
    sum += s;
  }
  Result("load_best_s", best);
  Result("load_mean_s", sum / iters);

  // Full and 10% Fetch (the first tenth of the keys, checkpoint order).
  {
    weightd::FetchOptions all;
    weightd::FetchOptions part;
    size_t n = manifest->tensors.size();
    size_t k = std::max<size_t>(1, n / 10);
    uint64_t part_bytes = 0;
    for (size_t i = 0; i < k; ++i) {
      part.keys.push_back(manifest->tensors[i].name);
      part_bytes += manifest->tensors[i].nbytes;
    }
    double full_best = 1e30, part_best = 1e30;
    for (int i = 0; i < iters; ++i) {
      auto t0 = Clock::now();
      auto f = client.Fetch(model, all);
      double s = Since(t0);
      if (!f.ok()) {
        std::cerr << "Fetch: " << f.status() << "\n";
        return 1;
      }
      full_best = std::min(full_best, s);
      t0 = Clock::now();
      auto p = client.Fetch(model, part);
      s = Since(t0);
      if (!p.ok() || p->size() != k) {
        std::cerr << "Fetch partial: " << p.status() << "\n";
        return 1;
      }
      part_best = std::min(part_best, s);
    }
    Result("fetch_full_s", full_best);
    Result("fetch_part_s", part_best);
    Result("fetch_part_keys", static_cast<double>(k));
    Result("fetch_part_bytes", static_cast<double>(part_bytes));
  }

  if (clients > 0) {
    // N clients, each its own channel, loading the cached model at once into
    // one shared target module: the server's memory is what is measured,
    // and N private 1 GiB modules would not fit beside it. The concurrent
    // writes store identical bytes.
    long rss_before = VmRssKiB(server_pid);
    std::atomic<long> rss_peak{rss_before};
    std::atomic<bool> done{false};
    std::thread sampler([&] {
      while (!done.load()) {
        long r = VmRssKiB(server_pid);
        long p = rss_peak.load();
        while (r > p && !rss_peak.compare_exchange_weak(p, r)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&] {
        weightd::Client own(copt);
        auto r = own.Load(*module, model, {});
        if (!r.ok()) {
          std::cerr << "concurrent Load: " << r.status() << "\n";
          ++failures;
        }
      });
    }
    for (auto& t : threads) t.join();
    double s = Since(t0);
    done = true;
    sampler.join();
    long rss_after = VmRssKiB(server_pid);
    Result("concurrent_clients", clients);
    Result("concurrent_s", s);
    Result("concurrent_failures", failures.load());
    Result("rss_before_kib", rss_before);
    Result("rss_peak_kib", rss_peak.load());
    Result("rss_after_kib", rss_after);
  }
  return 0;
}
