#include "core/util/address.h"

#include "gtest/gtest.h"

namespace weightd {
namespace {

TEST(ParseHostPort, ReadsHostAndPort) {
  absl::StatusOr<HostPort> a = ParseHostPort("127.0.0.1:50051");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 50051);
  absl::StatusOr<HostPort> b = ParseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  absl::StatusOr<HostPort> c = ParseHostPort("localhost:65535");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->port, 65535);
}

TEST(ParseHostPort, RefusesPortsOutsideSixteenBits) {
  for (const char* address : {"127.0.0.1:99999", "127.0.0.1:65536", "[::1]:70000",
                              "127.0.0.1:18446744073709551617"}) {
    absl::StatusOr<HostPort> parsed = ParseHostPort(address);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << address;
    EXPECT_NE(parsed.status().message().find("out of range 0-65535"), std::string::npos)
        << parsed.status();
  }
}

TEST(ParseHostPort, RefusesAMissingPortOrHost) {
  for (const char* address : {"127.0.0.1", "127.0.0.1:", "[::1]", "[::1]:", ":50051", "",
                              "host:-1", "host:5x", "host: 80", "::1:80", "[::1"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseHostPort(address).status())) << address;
  }
  EXPECT_NE(ParseHostPort("127.0.0.1").status().message().find("missing port"), std::string::npos);
}

TEST(CheckListenAddress, AcceptsUnixSocketsWithAPath) {
  EXPECT_TRUE(CheckListenAddress("unix:/tmp/weightd.sock").ok());
  EXPECT_FALSE(CheckListenAddress("unix:").ok());
  EXPECT_FALSE(CheckListenAddress("127.0.0.1:99999").ok());
}

TEST(CheckTarget, ChecksThePortOfEveryForm) {
  for (const char* ok : {"localhost:50051", "[::1]:50051", "dns:///weightd.ml.svc:50051",
                         "dns://8.8.8.8/weightd:50051", "dns:weightd:1", "unix:/run/w.sock",
                         "unix:relative", "unix-abstract:w", "ipv4:127.0.0.1:1,127.0.0.2:2"}) {
    EXPECT_TRUE(CheckTarget(ok).ok()) << ok << ": " << CheckTarget(ok);
  }
  for (const char* bad : {"127.0.0.1", "127.0.0.1:99999", "dns:///weightd", "dns:///w:65536",
                          "dns://authority", "ipv4:127.0.0.1", "[::1]"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(CheckTarget(bad))) << bad;
  }
}

}  // namespace
}  // namespace weightd
