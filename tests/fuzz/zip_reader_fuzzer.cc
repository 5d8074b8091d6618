// libFuzzer target: open arbitrary bytes as a zip and read every entry.
// Any input must give a status, never a crash, hang or huge allocation.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/checkpoint/buffer.h"
#include "core/format/zip/zip_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const weightd::Buffer> file =
      weightd::Buffer::Own(std::vector<uint8_t>(data, data + size));
  weightd::ZipReaderOptions options;
  options.max_inflated_size = 64 << 20;  // keep the fuzzer's memory bounded
  auto reader = weightd::ZipReader::Open(file, "fuzz.zip", options);
  if (!reader.ok()) return 0;
  for (const weightd::ZipEntry& entry : reader->entries()) {
    if (reader->Find(entry.name) != &entry) __builtin_trap();
    auto bytes = reader->Read(entry);
    if (bytes.ok() && (*bytes)->size() != entry.size) __builtin_trap();
    (void)reader->VerifyCrc(entry);
  }
  return 0;
}
