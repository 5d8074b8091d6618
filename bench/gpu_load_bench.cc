// gpu_load_bench: in one run against one daemon, weightd::Client::Load of a
// model into a CPU module (host-only Load) and into the same module on
// cuda:0 (the staging ring, client/cuda_staging.h), beside the raw pinned
// host-to-device cudaMemcpy of the same bytes, so that the CUDA Load is
// judged against the host Load (issue #16: within 1.1x) and against the
// copy engine's peak. Prints a Markdown table and writes it to --out.
// Driven by scripts/gpu-run.sh on the GPU machine; without CUDA it measures
// the host rows and says why the others are missing.
//
//   gpu_load_bench --target 127.0.0.1:PORT --model big --iters 3 --out FILE
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/types.h>
#include <weightd/client.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/flags.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_module.h"

#if defined(WEIGHTD_CLIENT_CUDA) && __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define WEIGHTD_BENCH_CUDART 1
#else
#define WEIGHTD_BENCH_CUDART 0
#endif

namespace {

using weightd::bench::Flag;

using Clock = std::chrono::steady_clock;
using weightd::bench::BuildModule;
using weightd::bench::Node;

struct Timing {
  bool ok = false;
  double best = 0, mean = 0;
  std::string note;
};

// `iters` timed calls of `call` (false: failed, stop), after `warmup` untimed ones.
Timing Time(int warmup, int iters, const std::function<bool(std::string*)>& call) {
  Timing t;
  for (int i = 0; i < warmup; ++i) {
    if (!call(&t.note)) return t;
  }
  double best = 1e30, sum = 0;
  for (int i = 0; i < iters; ++i) {
    auto t0 = Clock::now();
    if (!call(&t.note)) return t;
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    sum += s;
  }
  t.ok = true;
  t.best = best;
  t.mean = sum / iters;
  return t;
}

struct Row {
  std::string name, what;
  Timing timing;
  std::string note;
};

class Table {
 public:
  explicit Table(uint64_t bytes) : bytes_(bytes) {}
  void Add(Row row) { rows_.push_back(std::move(row)); }
  // The row the others are compared with (the host-only Load).
  void SetBaseline(double seconds) { baseline_ = seconds; }

  std::string Markdown() const {
    std::ostringstream out;
    out << "| row | what | best s | mean s | GiB/s (best) | x host Load | note |\n"
        << "| --- | --- | ---: | ---: | ---: | ---: | --- |\n";
    for (const Row& r : rows_) {
      if (!r.timing.ok) {
        out << "| " << r.name << " | " << r.what << " | - | - | - | - | "
            << (r.note.empty() ? r.timing.note : r.note) << " |\n";
        continue;
      }
      const double gib = static_cast<double>(bytes_) / (1 << 30);
      out << absl::StrFormat(
          "| %s | %s | %.4f | %.4f | %.2f | %s | %s |\n", r.name, r.what, r.timing.best,
          r.timing.mean, gib / r.timing.best,
          baseline_ > 0 ? absl::StrFormat("%.3f", r.timing.best / baseline_) : std::string("-"),
          r.note);
    }
    return out.str();
  }

 private:
  uint64_t bytes_;
  double baseline_ = 0;
  std::vector<Row> rows_;
};

// Every tensor of `a` equals its namesake in `b` (moved to the CPU).
bool SameValues(const torch::nn::Module& a, const torch::nn::Module& b, std::string* why) {
  auto bp = b.named_parameters();
  for (const auto& item : a.named_parameters()) {
    if (!torch::equal(item.value().cpu(), bp[item.key()].cpu())) {
      *why = "values differ at " + item.key();
      return false;
    }
  }
  return true;
}

#if WEIGHTD_BENCH_CUDART
// cudaMemcpy of `bytes` from pinned (or pageable) host memory to cuda:0.
Timing RawHostToDevice(uint64_t bytes, bool pinned, int iters) {
  Timing t;
  void* host = nullptr;
  void* dev = nullptr;
  cudaError_t err =
      pinned ? cudaMallocHost(&host, bytes) : (host = std::malloc(bytes), cudaSuccess);
  if (err == cudaSuccess && host != nullptr) err = cudaMalloc(&dev, bytes);
  if (err != cudaSuccess || host == nullptr) {
    t.note = absl::StrCat("allocation failed: ", cudaGetErrorString(err));
  } else {
    std::memset(host, 1, bytes);  // pages faulted in before timing
    t = Time(1, iters, [&](std::string* note) {
      cudaError_t e = cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice);
      if (e != cudaSuccess) *note = cudaGetErrorString(e);
      return e == cudaSuccess;
    });
  }
  if (dev != nullptr) cudaFree(dev);
  if (host != nullptr) pinned ? (void)cudaFreeHost(host) : std::free(host);
  return t;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const std::string target = Flag(argc, argv, "target", "127.0.0.1:50051");
  const std::string model = Flag(argc, argv, "model", "big");
  const int iters = std::max(1, std::atoi(Flag(argc, argv, "iters", "3").c_str()));
  const std::string out_path = Flag(argc, argv, "out", "");

  weightd::ClientOptions copt;
  copt.target = target;
  weightd::Client client(copt);
  absl::StatusOr<weightd::Manifest> manifest = client.GetManifest(model);
  if (!manifest.ok()) {
    std::cerr << "GetManifest: " << manifest.status() << "\n";
    return 1;
  }
  uint64_t bytes = 0;
  for (const auto& t : manifest->tensors) bytes += t.nbytes;
  Table table(bytes);

  // Load into `module` with `options`; the report must say every byte came.
  const auto load = [&](torch::nn::Module& module, weightd::LoadOptions options,
                        uint64_t* waits = nullptr) {
    return [&client, &model, &module, options, bytes, waits](std::string* note) {
      absl::StatusOr<weightd::LoadReport> r = client.Load(module, model, options);
      if (!r.ok() || r->bytes != bytes) {
        *note = r.ok() ? "short load" : std::string(r.status().message());
        std::cerr << "Load: " << *note << "\n";
        return false;
      }
      if (waits != nullptr) *waits += r->staging_waits;
      return true;
    };
  };
  const auto chunked = [](uint32_t chunk, uint32_t slots) {
    weightd::LoadOptions o;
    o.chunk_bytes = chunk;
    o.cuda_staging.slots = slots;
    return o;
  };

  // Host-only Load: the baseline. The warm-up load makes the server read
  // and cache the model, so every timed row measures the serving path.
  std::shared_ptr<Node> host = BuildModule(*manifest, manifest->tensors.size());
  Timing host_load = Time(1, iters, load(*host, {}));
  if (!host_load.ok) return 1;
  table.SetBaseline(host_load.best);
  table.Add({"host Load", "TCP, 1 MiB chunks, into a CPU module", host_load, ""});
  table.Add({"host Load, 4 MiB chunks", "TCP, into a CPU module",
             Time(0, iters, load(*host, chunked(4 << 20, 4))), ""});

  const bool cuda = torch::cuda::is_available();
  const std::string no_cuda = "no CUDA device (torch::cuda::is_available() is false)";
  std::shared_ptr<Node> device;
  if (cuda) {
    device = BuildModule(*manifest, manifest->tensors.size());
    device->to(torch::Device(torch::kCUDA, 0));
  }
  struct Variant {
    std::string name;
    uint32_t chunk, slots;
  };
  const std::vector<Variant> variants = {{"CUDA Load", 0, 4},
                                         {"CUDA Load, 2 slots", 0, 2},
                                         {"CUDA Load, 8 slots", 0, 8},
                                         {"CUDA Load, 4 MiB chunks", 4 << 20, 4}};
  Timing cuda_load;
  for (const Variant& v : variants) {
    const std::string what =
        absl::StrCat("TCP, ", v.chunk == 0 ? 1 : v.chunk >> 20, " MiB chunks, ring ", v.slots,
                     " x 1 chunk pinned, into cuda:0");
    if (!cuda) {
      table.Add({v.name, what, {}, no_cuda});
      continue;
    }
    uint64_t waits = 0;
    Timing t = Time(1, iters, load(*device, chunked(v.chunk, v.slots), &waits));
    std::string note = absl::StrCat("slot waits/load: ", waits / (iters + 1));
    std::string why;
    if (t.ok && !SameValues(*device, *host, &why)) {
      t.ok = false;
      t.note = "WRONG: " + why;
    }
    if (&v == &variants.front()) cuda_load = t;
    table.Add({v.name, what, t, t.ok ? note + ", values equal the host Load's" : ""});
  }

#if WEIGHTD_BENCH_CUDART
  if (cuda) {
    table.Add({"raw H2D, pinned", "cudaMemcpy of the same bytes from cudaMallocHost memory",
               RawHostToDevice(bytes, /*pinned=*/true, iters), "the copy engine's peak"});
    table.Add({"raw H2D, pageable", "cudaMemcpy from malloc'd memory",
               RawHostToDevice(bytes, /*pinned=*/false, iters), ""});
  } else {
    table.Add({"raw H2D, pinned", "cudaMemcpy", {}, no_cuda});
  }
#else
  table.Add({"raw H2D, pinned", "cudaMemcpy", {}, "built without CUDA (WEIGHTD_CLIENT_CUDA off)"});
#endif
  // Filled in by the lead once branch `gpus` (server GPU tier + CUDA IPC)
  // is merged: the same module, target unix:PATH, handles instead of bytes.
  table.Add({"CUDA Load, unix: + CUDA IPC",
             "same-node path, GPU tier (branch gpus)",
             {},
             "not measured here: IPC rows come with branch gpus"});

  std::ostringstream text;
  text << "gpu_load_bench: model " << model << ", " << manifest->tensors.size() << " tensors, "
       << bytes << " bytes; " << iters << " timed iterations per row after one warm-up\n"
       << "device: "
       << (cuda ? absl::StrCat(torch::cuda::device_count(), " CUDA device(s)") : no_cuda) << "\n\n"
       << table.Markdown();
  if (cuda_load.ok) {
    const double ratio = cuda_load.best / host_load.best;
    text << absl::StrFormat("\ntarget (#16): CUDA Load / host Load = %.3f (best of %d): %s\n",
                            ratio, iters, ratio <= 1.1 ? "met (<= 1.10)" : "NOT met (> 1.10)");
  }
  std::cout << text.str();
  if (!out_path.empty()) {
    std::ofstream out(out_path);
    out << text.str();
    if (!out) {
      std::cerr << "cannot write " << out_path << "\n";
      return 1;
    }
  }
  return 0;
}
