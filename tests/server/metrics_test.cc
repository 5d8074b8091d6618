// Prometheus metrics: the registry's text format, and a real scrape over
// HTTP after a real Fetch.
#include <thread>
#include <httplib.h>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/registry.h"
#include "server/metrics/weightd_metrics.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The value of the sample line `series` ("name{labels}") in `text`; -1 when
// absent.
double Sample(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

TEST(MetricsRegistry, RendersCountersWithHelpTypeAndLabels) {
  MetricsRegistry registry;
  registry.DeclareCounter("x_total", "Things.");
  registry.Add("x_total", {{"method", "/a/B"}, {"code", "OK"}}, 2);
  registry.Add("x_total", {{"method", "/a/B"}, {"code", "OK"}}, 3);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# HELP x_total Things.\n# TYPE x_total counter\n"));
  EXPECT_EQ(Sample(text, "x_total{method=\"/a/B\",code=\"OK\"}"), 5);
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithSumAndCount) {
  MetricsRegistry registry;
  registry.DeclareHistogram("h_seconds", "H.", {1, 10});
  registry.Observe("h_seconds", {}, 0.5);
  registry.Observe("h_seconds", {}, 5);
  registry.Observe("h_seconds", {}, 50);
  const std::string text = registry.Render();
  EXPECT_EQ(Sample(text, "h_seconds_bucket{le=\"1\"}"), 1);
  EXPECT_EQ(Sample(text, "h_seconds_bucket{le=\"10\"}"), 2);
  EXPECT_EQ(Sample(text, "h_seconds_bucket{le=\"+Inf\"}"), 3);
  EXPECT_EQ(Sample(text, "h_seconds_sum"), 55.5);
  EXPECT_EQ(Sample(text, "h_seconds_count"), 3);
}

TEST(MetricsRegistry, EscapesLabelValues) {
  MetricsRegistry registry;
  registry.DeclareGauge("g", "G.");
  registry.Set("g", {{"l", "a\"b\\c\nd"}}, 1);
  EXPECT_THAT(registry.Render(), HasSubstr("g{l=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(MetricsRegistry, RecordingIntoAnUndeclaredFamilyIsIgnored) {
  MetricsRegistry registry;
  registry.Add("nope_total", {}, 1);
  EXPECT_THAT(registry.Render(), Not(HasSubstr("nope_total")));
}

TEST(MetricsRegistry, CollectorsRunAtEachRender) {
  MetricsRegistry registry;
  registry.DeclareGauge("g", "G.");
  int calls = 0;
  registry.AddCollector([&calls](MetricsRegistry& r) { r.Set("g", {}, ++calls); });
  EXPECT_EQ(Sample(registry.Render(), "g"), 1);
  EXPECT_EQ(Sample(registry.Render(), "g"), 2);
}

class MetricsTest : public ServerTest {
 protected:
  void StartWithMetrics() {
    ServerOptions options;
    options.metrics_listen = "127.0.0.1:0";
    StartServerWith(std::move(options));
    ASSERT_GT(server_->metrics_port(), 0);
  }

  std::string Scrape() {
    httplib::Client client("127.0.0.1", server_->metrics_port());
    httplib::Result result = client.Get("/metrics");
    EXPECT_TRUE(result) << "scrape failed";
    if (!result) return "";
    EXPECT_EQ(result->status, 200);
    EXPECT_THAT(result->get_header_value("Content-Type"), HasSubstr("version=0.0.4"));
    return result->body;
  }
};

TEST_F(MetricsTest, ScrapeAfterAFetchShowsTheRequestAndItsBytes) {
  StartWithMetrics();
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(64 << 10);
  FetchResult result = FetchAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  uint64_t tensor_bytes = 0;
  for (const FetchedTensor& t : result.tensors) tensor_bytes += t.bytes.size();
  ASSERT_GT(tensor_bytes, 0u);

  const std::string text = Scrape();
  const std::string fetch = "method=\"/weightd.v1.WeightService/Fetch\"";
  EXPECT_EQ(Sample(text, "weightd_requests_total{" + fetch + ",code=\"OK\"}"), 1) << text;
  // Tensor bytes plus headers, report and chunk framing.
  const double sent = Sample(text, "weightd_sent_bytes_total{" + fetch + "}");
  EXPECT_GE(sent, tensor_bytes);
  EXPECT_LT(sent, tensor_bytes + 64 * 1024);
  EXPECT_EQ(Sample(text, "weightd_active_streams{" + fetch + "}"), 0);
  EXPECT_EQ(Sample(text, "weightd_cache_misses_total{tier=\"host\"}"), 1);
  EXPECT_EQ(Sample(text, "weightd_model_load_seconds_count{result=\"ok\"}"), 1);
  EXPECT_GT(Sample(text, "weightd_cache_bytes{tier=\"host\"}"), 0);
  EXPECT_EQ(Sample(text, "weightd_model_versions{state=\"ready\"}"), 1);
}

TEST_F(MetricsTest, ASecondFetchIsACacheHit) {
  StartWithMetrics();
  v1::FetchRequest request;
  request.set_model("lenet");
  ASSERT_TRUE(FetchAll(stub_.get(), request).status.ok());
  ASSERT_TRUE(FetchAll(stub_.get(), request).status.ok());
  const std::string text = Scrape();
  EXPECT_EQ(Sample(text, "weightd_cache_hits_total{tier=\"host\"}"), 1);
  EXPECT_EQ(Sample(text, "weightd_cache_misses_total{tier=\"host\"}"), 1);
}

TEST_F(MetricsTest, ErrorsAreCountedByMethodAndCode) {
  StartWithMetrics();
  grpc::ClientContext context;
  v1::GetManifestRequest request;
  request.set_model("no_such_model");
  v1::GetManifestResponse response;
  ASSERT_EQ(stub_->GetManifest(&context, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  const std::string series =
      "{method=\"/weightd.v1.WeightService/GetManifest\",code=\"NOT_FOUND\"}";
  // The interceptor counts once the status is sent, which may be after the
  // client has it: scrape until the sample shows (it failed half the runs).
  std::string text = Scrape();
  for (int i = 0; i < 100 && Sample(text, "weightd_requests_total" + series) < 0; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    text = Scrape();
  }
  EXPECT_EQ(Sample(text, "weightd_requests_total" + series), 1) << text;
  EXPECT_EQ(Sample(text, "weightd_request_errors_total" + series), 1);
}

TEST_F(MetricsTest, AnOpenStreamIsCountedAsActive) {
  StartWithMetrics();
  grpc::ClientContext context;
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(64 << 10);
  // A 64 KiB window keeps the stream open while the test does not read (a
  // widened one took all 4 MiB, and the stream ended before the scrape).
  std::unique_ptr<v1::WeightService::Stub> narrow = NarrowWindowStub(server_->port());
  auto reader = narrow->Fetch(&context, request);
  v1::FetchResponse response;
  ASSERT_TRUE(reader->Read(&response));
  // The interceptor records the stream on its own thread; the first message
  // can reach the client before that. The stream stays open while we poll.
  const std::string active = "weightd_active_streams{method=\"/weightd.v1.WeightService/Fetch\"}";
  double seen = 0;
  for (int i = 0; i < 100 && seen != 1; ++i) {
    seen = Sample(Scrape(), active);
    if (seen != 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(seen, 1);
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  reader->Finish().IgnoreError();
}

TEST_F(MetricsTest, AnUnusableMetricsAddressFailsTheStart) {
  ServerOptions options;
  options.repository = repo_;
  options.metrics_listen = "not-an-address";
  EXPECT_EQ(WeightServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weightd::testing
