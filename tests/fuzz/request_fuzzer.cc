// libFuzzer target: the server's handling of Match and Fetch requests up to
// the point where bytes would be streamed, without gRPC. The first input
// byte picks the message (even: MatchRequest, odd: FetchRequest), the rest is
// its wire encoding as it arrives off the network. Then what WeightService
// and FetchReactor do: request limits, proto -> core conversion with a model
// config's rules merged in, the select path on a loaded snapshot, the
// matching engine or the fetch plan, the dtype cast of every planned tensor,
// the chunk messages each tensor is cut into (each must fit the receive
// limit the request asked for and parse back as what was framed), and the
// report back to proto. Any input must give a status.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "server/cache/dtype_cast.h"
#include "server/cache/fetch_plan.h"
#include "server/cache/snapshot.h"
#include "server/service/chunk_framing.h"
#include "server/service/convert.h"
#include "server/service/request_limits.h"
#include "tests/fuzz/fuzz_files.h"
#include "weightd/v1/config.pb.h"
#include "weightd/v1/weightd.pb.h"

namespace {

struct Fixture {
  std::shared_ptr<const weightd::Snapshot> snapshot;
  weightd::v1::ModelConfig config;
  weightd::RequestLimits limits;
};
const Fixture* fixture = nullptr;

template <typename T>
std::string Elements(std::vector<T> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A small DataParallel-style state dict covering every cast path: floats of
// each width (with a NaN and values no integer holds, which casts to integer
// dtypes must refuse), integers and bools. Keep names in step with
// make_seeds.py (request_seeds).
std::string Checkpoint() {
  using weightd::fuzz::FakeTensor;
  const float nan = __builtin_nanf("");
  return weightd::fuzz::SafetensorsBytes(
      {
          {"module.conv1.weight",
           "F32",
           {4, 1, 2, 2},
           Elements<float>({1, -2, 3.5f, 0, 1e30f, -1e-30f, nan, 7, 8, 9, 10, 11, 12, 13, 14, 15})},
          {"module.conv1.bias", "F32", {2}, Elements<float>({0.25f, -0.25f})},
          {"module.embed.weight", "F64", {2, 2}, Elements<double>({1e300, -1, 0.5, 3})},
          {"module.fc.weight",
           "F16",
           {3, 2},
           Elements<uint16_t>({0x3c00, 0xbc00, 0x7c00, 0x7e00, 0, 1})},
          {"module.fc.bias", "BF16", {3}, Elements<uint16_t>({0x3f80, 0xff80, 0x7fc0})},
          {"module.bn.num_batches_tracked", "I64", {}, Elements<int64_t>({INT64_MIN})},
          {"module.index", "I32", {3}, Elements<int32_t>({-1, 0, INT32_MAX})},
          {"module.mask", "BOOL", {4}, Elements<uint8_t>({0, 1, 1, 0})},
          {"module.bytes", "U8", {2}, Elements<uint8_t>({255, 7})},
      },
      "{\"format\":\"pt\"}");
}

void MatchRequest(const uint8_t* data, size_t size) {
  weightd::v1::MatchRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  if (!weightd::CheckMatchRequest(request, fixture->limits).ok()) return;
  absl::StatusOr<std::vector<weightd::TensorEntry>> target = weightd::FromProto(request.target());
  if (!target.ok()) return;
  absl::StatusOr<std::shared_ptr<const weightd::StateDictView>> view =
      fixture->snapshot->View(request.select());
  if (!view.ok()) return;
  absl::StatusOr<weightd::MatchReport> report =
      weightd::MatchView(**view, *target,
                         weightd::MergeRuleSets(weightd::FromProto(fixture->config.rules()),
                                                weightd::FromProto(request.rules())),
                         weightd::FromProto(request.options()));
  if (!report.ok()) return;
  weightd::v1::MatchReport response;
  weightd::ToProto(*report, fixture->snapshot->version(), &response);
  (void)response.SerializeAsString();
}

// One chunk message as FetchReactor sends it (prefix + data) must fit the
// request's receive limit and parse back as the chunk that was framed.
void CheckChunk(uint32_t index, uint64_t offset, uint64_t len, uint64_t max_message) {
  std::string message = weightd::EncodeChunkPrefix(index, offset, len);
  if (message.size() > weightd::kChunkFramingBytes || message.size() + len > max_message) {
    __builtin_trap();  // a chunk message the client would refuse
  }
  message.append(len, '\x5a');
  weightd::v1::FetchResponse parsed;
  if (!parsed.ParseFromString(message) || !parsed.has_chunk() ||
      parsed.chunk().index() != index || parsed.chunk().offset() != offset ||
      parsed.chunk().data().size() != len) {
    __builtin_trap();  // the hand-encoded prefix is not the message it claims
  }
}

// The chunks of every planned tensor: the first 16 and the last of each.
void CheckChunks(const weightd::v1::FetchRequest& request, const weightd::FetchPlan& plan) {
  absl::StatusOr<uint32_t> chunk =
      weightd::EffectiveChunkBytes(request.chunk_bytes(), request.max_receive_bytes());
  if (!chunk.ok()) return;
  if (*chunk == 0) __builtin_trap();  // would never finish a tensor
  const uint64_t max_message = request.max_receive_bytes() == 0
                                   ? weightd::kDefaultMaxMessageBytes
                                   : request.max_receive_bytes();
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const uint64_t n = plan.tensors[i].send_bytes;
    const auto index = static_cast<uint32_t>(i);
    int count = 0;
    for (uint64_t offset = 0; offset < n && count < 16; offset += *chunk, ++count) {
      CheckChunk(index, offset, std::min<uint64_t>(*chunk, n - offset), max_message);
    }
    if (n > 0) {
      const uint64_t last = (n - 1) / *chunk * *chunk;
      CheckChunk(index, last, n - last, max_message);
    }
  }
}

void FetchRequest(const uint8_t* data, size_t size) {
  weightd::v1::FetchRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  if (!weightd::CheckFetchRequest(request, fixture->limits).ok()) return;
  absl::StatusOr<weightd::FetchSpec> spec = weightd::FromProto(request, fixture->config);
  if (!spec.ok()) return;
  absl::StatusOr<std::shared_ptr<const weightd::StateDictView>> view =
      fixture->snapshot->View(request.select());
  if (!view.ok()) return;
  absl::StatusOr<weightd::FetchPlan> plan = weightd::PlanFetch(**view, *spec);
  if (!plan.ok()) return;
  weightd::v1::MatchReport response;
  weightd::ToProto(plan->report, fixture->snapshot->version(), &response);
  (void)response.SerializeAsString();
  // The bytes FetchReactor::PrepareTensor would send.
  for (const weightd::PlannedTensor& planned : plan->tensors) {
    const weightd::TensorRecord& record = (*view)->tensors()[planned.index].second;
    if (planned.send_dtype == record.dtype) continue;  // sent zero-copy
    std::vector<uint8_t> strided, cast;
    absl::Span<const uint8_t> row_major = record.ContiguousBytes(&strided);
    if (weightd::CastBytes(row_major, record.dtype, planned.send_dtype, &cast).ok() &&
        cast.size() != planned.send_bytes) {
      __builtin_trap();  // the plan promised another size than the cast gives
    }
  }
  CheckChunks(request, *plan);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // libprotobuf logs every string field that is not UTF-8; the parse fails
  // and we return, so the log is only noise at thousands of inputs a second.
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  std::string dir = weightd::fuzz::MakeTempDir("request-fuzz");
  std::string path = dir + "/model.safetensors";
  weightd::fuzz::WriteTempFile(path, Checkpoint());
  auto* f = new Fixture;
  absl::StatusOr<std::shared_ptr<const weightd::Snapshot>> snapshot =
      weightd::Snapshot::Load("fuzz", 1, path, "");
  if (!snapshot.ok()) {
    std::fprintf(stderr, "request_fuzzer: %s\n", std::string(snapshot.status().message()).c_str());
    std::abort();
  }
  f->snapshot = *snapshot;
  // As a model.pbtxt would: rules applied before each request's own.
  f->config.mutable_rules()->add_rules()->set_strip_prefix("module.");
  f->config.mutable_rules()->add_ignore_unexpected("num_batches_tracked$");
  fixture = f;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 20)) return 0;
  if (data[0] % 2 == 0) {
    MatchRequest(data + 1, size - 1);
  } else {
    FetchRequest(data + 1, size - 1);
  }
  return 0;
}
