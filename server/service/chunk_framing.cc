#include "server/service/chunk_framing.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace weightd {
namespace {

void PutVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

}  // namespace

absl::StatusOr<uint32_t> EffectiveChunkBytes(uint32_t chunk_bytes, uint32_t max_receive_bytes) {
  const uint32_t max_message = max_receive_bytes == 0 ? kDefaultMaxMessageBytes : max_receive_bytes;
  if (max_message < kMinChunkBytes + kChunkFramingBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_receive_bytes ", max_receive_bytes, " is below ",
                     kMinChunkBytes + kChunkFramingBytes, " (a chunk of the ", kMinChunkBytes,
                     "-byte floor and its framing)"));
  }
  const uint32_t limit = max_message - kChunkFramingBytes;
  const uint32_t wanted =
      chunk_bytes == 0 ? kDefaultChunkBytes : std::max(chunk_bytes, kMinChunkBytes);
  return std::min(wanted, limit);
}

std::string EncodeChunkPrefix(uint32_t index, uint64_t offset, uint64_t data_size) {
  // TensorChunk: index = 1 (varint), offset = 2 (varint), data = 3 (bytes).
  const uint64_t chunk_size = 1 + VarintSize(index) + 1 + VarintSize(offset) + 1 +
                              VarintSize(data_size) + data_size;
  std::string out;
  out.reserve(kChunkFramingBytes);
  out.push_back(static_cast<char>((3 << 3) | 2));  // FetchResponse.chunk = 3, LEN
  PutVarint(chunk_size, &out);
  out.push_back(static_cast<char>((1 << 3) | 0));
  PutVarint(index, &out);
  out.push_back(static_cast<char>((2 << 3) | 0));
  PutVarint(offset, &out);
  out.push_back(static_cast<char>((3 << 3) | 2));
  PutVarint(data_size, &out);
  return out;
}

}  // namespace weightd
