// gpu_staging_bench: the server side of the GPU tier on a real GPU, to be
// run on a GPU machine (built only with WEIGHTD_CUDA; no results can be had
// without a device). Rows, for a synthetic model of --mib MiB (float32
// 1024x1024 tensors):
//   upload    GpuTier::Upload from pageable host memory (H2D)
//   d2h peak  64 MiB cudaMemcpyAsync copies into one pinned buffer
//   staging   DeviceReader (pinned staging, double-buffered) per chunk size,
//             consumer idle, and consumer copying each chunk once (what the
//             kernel does when gRPC writes it to a socket)
//   ipc       ExportForIpc, then a child process opens the handle and copies
//             the allocation device-to-device into its own (the same-node
//             handoff; target: 200 GB/s or more for 1 GiB)
//   gpu_staging_bench [--mib 1024] [--iters 3] [--device 0] [--emulated 1]
// --emulated 1: emulated devices in host memory (server/gpu/host_backend.h),
// to check the program itself on a machine without a GPU; no ipc rows.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/flags.h"
#include "absl/strings/str_cat.h"
#include "core/checkpoint/buffer.h"
#include "server/cache/device_reader.h"
#include "server/cache/gpu_export.h"
#include "server/cache/gpu_tier.h"
#include "server/gpu/host_backend.h"

namespace {

using weightd::bench::Flag;

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Row(const std::string& what, double seconds, uint64_t bytes) {
  std::printf("| %-52s | %9.4f | %8.2f |\n", what.c_str(), seconds, bytes / seconds / 1e9);
}

// Child: open the handle, copy `bytes` device-to-device, print the times.
int IpcChild(int device, const std::string& hex, uint64_t bytes) {
  cudaIpcMemHandle_t handle;
  auto* raw = reinterpret_cast<unsigned char*>(&handle);
  for (size_t i = 0; i < sizeof(handle); ++i) {
    raw[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  if (cudaSetDevice(device) != cudaSuccess) return 1;
  void* dst = nullptr;
  if (cudaMalloc(&dst, bytes) != cudaSuccess) return 1;
  cudaFree(nullptr);  // the context exists before the clock starts
  Clock::time_point start = Clock::now();
  void* base = nullptr;
  cudaError_t error = cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess);
  if (error != cudaSuccess) {
    std::fprintf(stderr, "cudaIpcOpenMemHandle: %s\n", cudaGetErrorString(error));
    return 1;
  }
  const double open_s = Seconds(start);
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    start = Clock::now();
    cudaMemcpy(dst, base, bytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    best = std::min(best, Seconds(start));
  }
  cudaIpcCloseMemHandle(base);
  std::printf("%.6f %.6f\n", open_s, best);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace weightd;
  if (argc >= 5 && std::string(argv[1]) == "--ipc_child") {
    return IpcChild(std::atoi(argv[2]), argv[3], std::stoull(argv[4]));
  }
  const uint64_t mib = std::stoull(Flag(argc, argv, "mib", "1024"));
  const int iters = std::atoi(Flag(argc, argv, "iters", "3").c_str());
  const int device = std::atoi(Flag(argc, argv, "device", "0").c_str());
  const bool emulated = Flag(argc, argv, "emulated", "0") == "1";
  std::shared_ptr<DeviceBackend> backend = CudaBackend();
  if (emulated) {
    HostBackendOptions host;
    host.memory_bytes = (mib + 64) << 20;
    backend = std::make_shared<HostBackend>(host);
  }

  GpuTierOptions options;
  options.budget_bytes = (mib + 64) << 20;
  GpuTier tier(backend, options);
  if (!tier.availability().ok()) {
    std::fprintf(stderr, "gpu_staging_bench: %s\n",
                 std::string(tier.availability().message()).c_str());
    return 1;
  }
  std::printf("%s\nload: ", tier.Describe().c_str());
  std::fflush(stdout);
  std::system("cut -d' ' -f1-3 /proc/loadavg");

  // The model: mib / 4 tensors of 4 MiB, random bytes.
  StateDict tensors;
  std::mt19937_64 random(0);
  for (uint64_t i = 0; i < mib / 4; ++i) {
    std::vector<uint8_t> bytes(4 << 20);
    for (size_t k = 0; k < bytes.size(); k += 8) {
      const uint64_t v = random();
      std::memcpy(bytes.data() + k, &v, 8);
    }
    auto storage = std::make_shared<Storage>();
    storage->buffer = Buffer::Own(std::move(bytes));
    storage->data = storage->buffer->data();
    storage->nbytes = 4 << 20;
    TensorRecord record;
    record.shape = {1024, 1024};
    record.strides = {1024, 1};
    record.storage = storage;
    tensors.emplace_back(absl::StrCat("layers.", i, ".weight"), std::move(record));
  }
  auto view = std::make_shared<const StateDictView>("", std::move(tensors));
  const uint64_t total = view->bytes();

  std::printf("\n| %-52s | %9s | %8s |\n|%s|%s|%s|\n", "case", "seconds", "GB/s",
              std::string(54, '-').c_str(), std::string(11, '-').c_str(),
              std::string(10, '-').c_str());
  std::shared_ptr<const GpuResidency> residency;
  for (int i = 0; i < iters; ++i) {
    residency.reset();
    tier.Drop(1);
    Clock::time_point start = Clock::now();
    auto uploaded = tier.Upload(1, view, device);
    const double s = Seconds(start);
    if (!uploaded.ok()) {
      std::fprintf(stderr, "upload: %s\n", std::string(uploaded.status().message()).c_str());
      return 1;
    }
    residency = *uploaded;
    Row("upload (H2D from pageable memory, checksums)", s, total);
  }

  {
    auto pinned = backend->AllocatePinned(residency->bytes());
    auto stream = backend->CreateStream(device);
    if (!pinned.ok() || !stream.ok()) return 1;
    for (int i = 0; i < iters; ++i) {
      Clock::time_point start = Clock::now();
      uint64_t ticket = 0;
      const uint64_t piece = 64 << 20;
      for (uint64_t off = 0; off < residency->bytes(); off += piece) {
        ticket = *(*stream)->CopyToHostAsync(static_cast<uint8_t*>(*pinned) + off,
                                             static_cast<const uint8_t*>(residency->base()) + off,
                                             std::min(piece, residency->bytes() - off));
      }
      if (!(*stream)->Wait(ticket).ok()) return 1;
      Row("d2h peak (64 MiB cudaMemcpyAsync into pinned)", Seconds(start), residency->bytes());
    }
    stream->reset();
    backend->FreePinned(*pinned);
  }

  std::vector<uint8_t> sink(4 << 20);
  for (uint64_t chunk : {uint64_t{1} << 20, uint64_t{4} << 20, uint64_t{256} << 10}) {
    for (bool consume : {false, true}) {
      double best = 1e9;
      for (int i = 0; i < iters; ++i) {
        Clock::time_point start = Clock::now();
        std::vector<int> all;
        for (size_t t = 0; t < view->tensors().size(); ++t) all.push_back(static_cast<int>(t));
        DeviceReader reader(residency, all, chunk);
        for (;;) {
          absl::StatusOr<StagedChunk> c = reader.Next();
          if (!c.ok()) {
            std::fprintf(stderr, "staging: %s\n", std::string(c.status().message()).c_str());
            return 1;
          }
          if (c->bytes.empty()) break;
          if (consume) std::memcpy(sink.data(), c->bytes.data(), c->bytes.size());
        }
        best = std::min(best, Seconds(start));
      }
      Row(absl::StrCat("staging, ", chunk >> 10, " KiB chunks", consume ? ", consumer copies" : ""),
          best, total);
    }
  }
  std::printf("pinned staging buffers allocated: %d\n", residency->staging()->allocations());

  if (emulated) return 0;
  absl::StatusOr<DeviceInfo> info = tier.Info(device);
  absl::StatusOr<GpuIpcExport> exported =
      ExportForIpc(tier, residency, {0}, info->uuid, Role::kRead);
  if (!exported.ok()) {
    std::fprintf(stderr, "export: %s\n", std::string(exported.status().message()).c_str());
    return 1;
  }
  std::string hex;
  for (uint8_t b : exported->handle) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  const std::string command = absl::StrCat("/proc/", getpid(), "/exe --ipc_child ", device, " ",
                                           hex, " ", residency->bytes());
  FILE* child = popen(command.c_str(), "r");
  double open_s = 0, copy_s = 0;
  if (child == nullptr || std::fscanf(child, "%lf %lf", &open_s, &copy_s) != 2) {
    std::fprintf(stderr, "ipc child failed\n");
    return 1;
  }
  pclose(child);
  std::printf("| %-52s | %9.6f | %8s |\n", "ipc: cudaIpcOpenMemHandle in the client", open_s, "-");
  Row("ipc: client D2D copy of the whole allocation (best of 5)", copy_s, residency->bytes());
  Row("ipc: open + copy (handoff)", open_s + copy_s, residency->bytes());
  return 0;
}
