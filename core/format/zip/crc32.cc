#include "core/format/zip/crc32.h"

#include <libdeflate.h>

namespace weightd {

uint32_t Crc32(absl::Span<const uint8_t> data, uint32_t crc) {
  // size_t lengths: no 4 GiB chunking as zlib's uInt needs.
  return libdeflate_crc32(crc, data.data(), data.size());
}

}  // namespace weightd
