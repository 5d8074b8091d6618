// CRC-32 (zip's, ISO-HDLC) of record data, through libdeflate: PCLMUL/AVX
// folding where the CPU has it, an order of magnitude faster than zlib's
// crc32() on the data `weightctl pull` writes (bench/RESULTS.md).
#ifndef WEIGHTD_CORE_FORMAT_ZIP_CRC32_H_
#define WEIGHTD_CORE_FORMAT_ZIP_CRC32_H_

#include <cstdint>

#include "absl/types/span.h"

namespace weightd {

// Continues `crc` (0 to start) over `data`.
uint32_t Crc32(absl::Span<const uint8_t> data, uint32_t crc = 0);

}  // namespace weightd

#endif  // WEIGHTD_CORE_FORMAT_ZIP_CRC32_H_
