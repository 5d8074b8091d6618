// Helper of gpu_cuda_test: another process imports a CUDA IPC handle, as a
// same-node client will, and prints the xxHash64 of each tensor it reads.
//   gpu_ipc_child DEVICE HANDLE_HEX OFFSET:BYTES...
// Exit 0 and one hex checksum per line, or exit 1 with the CUDA error.
#include <cuda_runtime_api.h>
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int Fail(const char* what, cudaError_t error) {
  std::fprintf(stderr, "gpu_ipc_child: %s: %s\n", what, cudaGetErrorString(error));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || std::strlen(argv[2]) != 2 * sizeof(cudaIpcMemHandle_t)) {
    std::fprintf(stderr, "usage: gpu_ipc_child DEVICE HANDLE_HEX OFFSET:BYTES...\n");
    return 2;
  }
  cudaIpcMemHandle_t handle;
  auto* bytes = reinterpret_cast<unsigned char*>(&handle);
  for (size_t i = 0; i < sizeof(handle); ++i) {
    bytes[i] = static_cast<unsigned char>(std::stoi(std::string(argv[2] + 2 * i, 2), nullptr, 16));
  }
  cudaError_t error = cudaSetDevice(std::atoi(argv[1]));
  if (error != cudaSuccess) return Fail("cudaSetDevice", error);
  void* base = nullptr;
  error = cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess);
  if (error != cudaSuccess) return Fail("cudaIpcOpenMemHandle", error);
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t colon = arg.find(':');
    const uint64_t offset = std::stoull(arg.substr(0, colon));
    const uint64_t n = std::stoull(arg.substr(colon + 1));
    std::vector<unsigned char> host(n);
    error = cudaMemcpy(host.data(), static_cast<char*>(base) + offset, n, cudaMemcpyDeviceToHost);
    if (error != cudaSuccess) return Fail("cudaMemcpy", error);
    std::printf("%016llx\n", static_cast<unsigned long long>(XXH64(host.data(), n, 0)));
  }
  error = cudaIpcCloseMemHandle(base);
  if (error != cudaSuccess) return Fail("cudaIpcCloseMemHandle", error);
  return 0;
}
