// How Fetch cuts a tensor into chunk messages, without gRPC: the data bytes
// per chunk for a request and the hand-encoded prefix of each chunk message.
// Kept apart from the reactor so tests/fuzz can check, for any request, that
// every chunk message fits the receive limit the client asked for.
#ifndef WEIGHTD_SERVER_SERVICE_CHUNK_FRAMING_H_
#define WEIGHTD_SERVER_SERVICE_CHUNK_FRAMING_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace weightd {

// Default data bytes per chunk, and the largest message sent unless the
// request's max_receive_bytes allows more (gRPC's default receive limit).
inline constexpr uint32_t kDefaultChunkBytes = 1 << 20;
inline constexpr uint32_t kDefaultMaxMessageBytes = 4 << 20;
// Upper bound of a chunk message's bytes besides the data.
inline constexpr uint32_t kChunkFramingBytes = 32;
// The smallest data bytes per chunk: a request asking for less is raised to
// it (chunk_bytes 1 once turned a 9 MiB tensor into 9.4 M messages).
inline constexpr uint32_t kMinChunkBytes = 64 << 10;

// The data bytes per chunk for a request: chunk_bytes (0: 1 MiB; below
// kMinChunkBytes: kMinChunkBytes), clamped so a whole chunk message fits
// max_receive_bytes (0: 4 MiB). InvalidArgument when max_receive_bytes is
// set but a kMinChunkBytes chunk message would not fit it.
absl::StatusOr<uint32_t> EffectiveChunkBytes(uint32_t chunk_bytes, uint32_t max_receive_bytes);

// FetchResponse{chunk: TensorChunk{index, offset, data}} up to (not
// including) the data bytes, which follow it on the wire.
std::string EncodeChunkPrefix(uint32_t index, uint64_t offset, uint64_t data_size);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_SERVICE_CHUNK_FRAMING_H_
