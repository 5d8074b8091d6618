// load_bench: times weightd::Client::Load of one model into a LibTorch module
// that mirrors the model's manifest (names, shapes, dtypes); a 10% partial
// load (a module holding the first tenth of the keys) and fetch; and N
// concurrent clients while watching the server's VmRSS. Each timed phase also
// reports this process's minor page faults per call.
// Driven by bench/run.sh; prints one "RESULT key value" line per figure so
// the script can parse it.
//
//   load_bench --target 127.0.0.1:PORT --model big --iters 3
//              [--clients 16] [--server_pid PID] [--load_only 1]
// --load_only 1: only the full Load (run.sh's second run, with other malloc
// settings, needs nothing else).
#include <sys/resource.h>
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

#include "bench/flags.h"
#include "absl/strings/string_view.h"
#include "bench/bench_module.h"
#include <weightd/client.h>

namespace {

using weightd::bench::Flag;

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using weightd::bench::BuildModule;
using weightd::bench::Node;

void Result(const std::string& key, double value) {
  std::printf("RESULT %s %.6f\n", key.c_str(), value);
  std::fflush(stdout);
}

long MinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Best and mean seconds of `iters` calls of `call` (which returns false on
// failure), and the mean minor page faults per call; prints them as
// NAME_best_s, NAME_mean_s, NAME_faults.
template <typename Call>
bool Time(const std::string& name, int iters, Call call) {
  double best = 1e30, sum = 0;
  long faults = 0;
  for (int i = 0; i < iters; ++i) {
    const long f0 = MinorFaults();
    auto t0 = Clock::now();
    if (!call()) return false;
    double s = Since(t0);
    faults += MinorFaults() - f0;
    best = std::min(best, s);
    sum += s;
  }
  Result(name + "_best_s", best);
  Result(name + "_mean_s", sum / iters);
  Result(name + "_faults", static_cast<double>(faults) / iters);
  return true;
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

}  // namespace

int main(int argc, char** argv) {
  const std::string target = Flag(argc, argv, "target", "127.0.0.1:50051");
  const std::string model = Flag(argc, argv, "model", "big");
  const int iters = std::atoi(Flag(argc, argv, "iters", "3").c_str());
  const int clients = std::atoi(Flag(argc, argv, "clients", "0").c_str());
  const int server_pid = std::atoi(Flag(argc, argv, "server_pid", "0").c_str());
  const bool load_only = Flag(argc, argv, "load_only", "0") == "1";
  // LoadOptions::copy_threads (0: at::get_num_threads(), as copy_).
  const int copy_threads = std::atoi(Flag(argc, argv, "copy_threads", "0").c_str());

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
  const size_t n = manifest->tensors.size();
  const size_t k = std::max<size_t>(1, n / 10);
  uint64_t part_bytes = 0;
  for (size_t i = 0; i < k; ++i) part_bytes += manifest->tensors[i].nbytes;
  std::shared_ptr<Node> module = BuildModule(*manifest, n);
  Result("bytes", static_cast<double>(total_bytes));
  Result("part_keys", static_cast<double>(k));
  Result("part_bytes", static_cast<double>(part_bytes));

  // Warm-up load: makes the server read and cache the model, so the timed
  // loads measure the serving path, not the first disk read.
  {
    absl::StatusOr<weightd::LoadReport> r = client.Load(*module, model, {});
    if (!r.ok()) {
      std::cerr << "Load: " << r.status() << "\n";
      return 1;
    }
    // Over a unix: target, whether the same-node path was taken.
    std::printf("transport: %s%s%s\n", r->transport.c_str(), r->transport_note.empty() ? "" : ": ",
                r->transport_note.c_str());
    Result("load_local", r->transport == "local" ? 1 : 0);
  }
  // The partial module leaves most keys unexpected: load_state_dict(strict=False).
  weightd::LoadOptions lenient;
  lenient.strict = false;
  lenient.copy_threads = copy_threads;
  const auto load_into = [&](Node& target, uint64_t want, const char* what) {
    return [&client, &model, &target, want, what, &lenient] {
      absl::StatusOr<weightd::LoadReport> r = client.Load(target, model, lenient);
      if (!r.ok() || r->bytes != want) {
        std::cerr << what << ": " << r.status() << "\n";
        return false;
      }
      return true;
    };
  };
  // Full Load into the whole module; partial Load into a module holding the
  // first tenth of the keys (the rest are unexpected keys, not sent).
  if (!Time("load", iters, load_into(*module, total_bytes, "Load"))) return 1;
  if (load_only) return 0;
  std::shared_ptr<Node> part_module = BuildModule(*manifest, k);
  if (!Time("load_part", iters, load_into(*part_module, part_bytes, "partial Load"))) return 1;

  // Full and 10% Fetch (the first tenth of the keys, checkpoint order) into
  // new tensors: each call allocates what it returns.
  weightd::FetchOptions all;
  weightd::FetchOptions part;
  for (size_t i = 0; i < k; ++i) part.keys.push_back(manifest->tensors[i].name);
  const auto fetch = [&](const weightd::FetchOptions& options, size_t want, const char* what) {
    return [&client, &model, &options, want, what] {
      auto f = client.Fetch(model, options);
      if (!f.ok() || f->size() != want) {
        std::cerr << what << ": " << f.status() << "\n";
        return false;
      }
      return true;
    };
  };
  if (!Time("fetch", iters, fetch(all, n, "Fetch")) ||
      !Time("fetch_part", iters, fetch(part, k, "partial Fetch"))) {
    return 1;
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
