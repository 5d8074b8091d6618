// The torch 2.x dtypes (float8_*, uint16/32/64) through a real server into
// LibTorch. Built against LibTorch >= 2.3 (the trixie lane: 2.6) they arrive
// as at::kFloat8_e4m3fn... with the checkpoint's bits, and load into float32
// modules as LibTorch's own .to() converts them. Built against 1.13, which
// has none of these types, Fetch is a clear error naming tensor and dtype,
// and a load that lets the server cast to the module's float32 still works.
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "core/checkpoint/buffer.h"
#include "core/checkpoint/tensor.h"
#include "core/format/safetensors/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache/dtype_cast.h"
#include "server/weight_server.h"

namespace weightd {
namespace {

using ::testing::HasSubstr;

constexpr bool kLibTorchHasTorch2DTypes =
    TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3);

TensorRecord MakeTensor(DType dtype, std::vector<int64_t> shape, std::string bytes) {
  auto storage = std::make_shared<Storage>();
  storage->dtype = dtype;
  storage->buffer = Buffer::Own(std::move(bytes));
  storage->data = storage->buffer->data();
  storage->nbytes = storage->buffer->size();
  TensorRecord t;
  t.dtype = dtype;
  t.strides = ContiguousStrides(shape);
  t.shape = std::move(shape);
  t.storage = std::move(storage);
  return t;
}

// Every float8 bit pattern (NaNs included), and unsigned values past the
// signed range.
std::string All256() {
  std::string s(256, '\0');
  for (int i = 0; i < 256; ++i) s[i] = static_cast<char>(i);
  return s;
}

StateDict Torch2Tensors() {
  std::string u16(8, '\0'), u32(8, '\0'), u64(16, '\0');
  const uint16_t a[] = {0, 1, 65535, 40000};
  const uint32_t b[] = {0xffffffffu, 7};
  const uint64_t c[] = {~uint64_t{0}, uint64_t{1} << 63};
  std::memcpy(u16.data(), a, 8);
  std::memcpy(u32.data(), b, 8);
  std::memcpy(u64.data(), c, 16);
  return {{"w8", MakeTensor(DType::kFloat8_e4m3fn, {16, 16}, All256())},
          {"w5", MakeTensor(DType::kFloat8_e5m2, {256}, All256())},
          {"wz", MakeTensor(DType::kFloat8_e4m3fnuz, {256}, All256())},
          {"w5z", MakeTensor(DType::kFloat8_e5m2fnuz, {256}, All256())},
          {"u16", MakeTensor(DType::kUInt16, {4}, u16)},
          {"u32", MakeTensor(DType::kUInt32, {2}, u32)},
          {"u64", MakeTensor(DType::kUInt64, {2}, u64)}};
}

class ClientTorch2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = ::testing::TempDir() + "/client_torch2_" + std::to_string(::getpid());
    ASSERT_EQ(std::system(("rm -rf " + repo_ + " && mkdir -p " + repo_).c_str()), 0);
    ASSERT_TRUE(WriteSafetensors(repo_ + "/torch2.safetensors", Torch2Tensors()).ok());
    ServerOptions options;
    options.repository = repo_;
    options.listen = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<WeightServer>> server = WeightServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ClientOptions client_options;
    client_options.target = absl::StrCat("127.0.0.1:", server_->port());
    client_ = std::make_unique<Client>(client_options);
  }
  void TearDown() override {
    client_.reset();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
    std::system(("rm -rf " + repo_).c_str());
  }

  std::string repo_;
  std::unique_ptr<WeightServer> server_;
  std::unique_ptr<Client> client_;
};

std::string Bits(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

TEST_F(ClientTorch2Test, FetchGivesTheTorch2DTypesWithTheirBitsOrAClearError) {
  absl::StatusOr<TensorMap> tensors = client_->Fetch("torch2");
  if (!kLibTorchHasTorch2DTypes) {
    // LibTorch 1.13: no such ScalarType; an error, never a crash.
    ASSERT_FALSE(tensors.ok());
    EXPECT_EQ(tensors.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(tensors.status().message()),
                HasSubstr("tensor 'w8': dtype float8_e4m3fn needs LibTorch >= 2.1"));
    return;
  }
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  for (const auto& [name, record] : Torch2Tensors()) {
    SCOPED_TRACE(name);
    const torch::Tensor& t = (*tensors)[name];
    EXPECT_EQ(ToScalarType(record.dtype).value(), t.scalar_type());
    EXPECT_EQ(t.sizes().vec(), record.shape);
    EXPECT_EQ(Bits(t), std::string(reinterpret_cast<const char*>(record.storage->data),
                                   record.storage->nbytes));
    EXPECT_EQ(FromScalarType(t.scalar_type()).value(), record.dtype);
  }
}

struct Float32Module : torch::nn::Module {
  Float32Module() {
    for (const char* name : {"w8", "w5", "wz", "w5z"}) {
      std::vector<int64_t> shape = std::string(name) == "w8" ? std::vector<int64_t>{16, 16}
                                                             : std::vector<int64_t>{256};
      params.push_back(register_parameter(name, torch::zeros(shape)));
    }
  }
  std::vector<torch::Tensor> params;
};

// What the server's cast gives (checked against torch 2.6's .to() by
// dtype_cast_torch2_test), as float32 bits.
std::string ServerCastToFloat32(const TensorRecord& record) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(CastBytes({record.storage->data, record.storage->nbytes}, record.dtype,
                        DType::kFloat32, &out)
                  .ok());
  return std::string(out.begin(), out.end());
}

TEST_F(ClientTorch2Test, Float8LoadsIntoFloat32ModuleWhenTheServerCasts) {
  // Works under LibTorch 1.13 too: float32 bytes are what arrive.
  Float32Module module;
  LoadOptions options;
  options.transfer_dtype = DType::kFloat32;
  options.strict = false;
  absl::StatusOr<LoadReport> report = client_->Load(module, "torch2", options);
  ASSERT_TRUE(report.ok()) << report.status();
  StateDict want = Torch2Tensors();
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(want[i].first);
    EXPECT_EQ(Bits(module.params[i]), ServerCastToFloat32(want[i].second));
  }
}

TEST_F(ClientTorch2Test, Float8LoadConvertedByLibTorchEqualsTheServerCast) {
  Float32Module module;
  LoadOptions options;
  options.transfer_dtype = DType::kFloat8_e4m3fn;  // bytes as stored; copy_ converts
  options.strict = false;
  absl::StatusOr<LoadReport> report = client_->Load(module, "torch2", options);
  if (!kLibTorchHasTorch2DTypes) {
    ASSERT_FALSE(report.ok());
    EXPECT_THAT(std::string(report.status().message()),
                HasSubstr("dtype float8_e4m3fn needs LibTorch >= 2.1"));
    return;
  }
  ASSERT_TRUE(report.ok()) << report.status();
  // w8 arrived as float8 and LibTorch's copy_ converted it: that is torch's
  // own conversion, and it equals the server's.
  EXPECT_EQ(Bits(module.params[0]), ServerCastToFloat32(Torch2Tensors()[0].second));
}

}  // namespace
}  // namespace weightd
