// The weightd binary: first stdout line, SIGTERM drain, exit status.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace weightd::testing {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// A weightd process with its stdout on a pipe. Killed (SIGKILL) if a test
// leaves it running.
class Daemon {
 public:
  // `stderr_path`: where its stderr goes (empty: this process's stderr).
  explicit Daemon(std::vector<std::string> args, const std::string& stderr_path = "") {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      if (!stderr_path.empty()) freopen(stderr_path.c_str(), "w", stderr);
      close(out[0]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>("weightd"));
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(WEIGHTD_BINARY, argv.data());
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
  }
  ~Daemon() {
    if (pid_ > 0 && !exit_status_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_ != nullptr) fclose(stdout_);
  }

  pid_t pid() const { return pid_; }

  // The next stdout line without its newline; empty at EOF.
  std::string ReadLine() {
    char line[256] = {};
    if (stdout_ == nullptr || fgets(line, sizeof(line), stdout_) == nullptr) return "";
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }

  // The wait status once the process has ended within `timeout`.
  std::optional<int> WaitForExit(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!exit_status_ && absl::Now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = status;
      } else {
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    return exit_status_;
  }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::optional<int> exit_status_;
};

// "listening on 127.0.0.1:PORT" -> "127.0.0.1:PORT".
std::string AddressOf(const std::string& line) {
  std::vector<std::string> words = absl::StrSplit(line, ' ');
  return words.back();
}

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

TEST(Daemon, PrintsThePortThenExitsCleanlyOnSigterm) {
  Daemon daemon({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                 "--drain_seconds", "1", "--minloglevel", "2"});
  ASSERT_GT(daemon.pid(), 0);
  const std::string line = daemon.ReadLine();
  EXPECT_TRUE(absl::StartsWith(line, "listening on 127.0.0.1:")) << line;
  EXPECT_NE(line, "listening on 127.0.0.1:0");
  kill(daemon.pid(), SIGTERM);
  std::optional<int> status = daemon.WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << "weightd did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

// The exit status of weightd run with `flags` that make it refuse to start
// (stderr discarded); -1 if it did not exit.
int ExitStatusOfBadStart(const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"weightd"};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    execv(WEIGHTD_BINARY, argv.data());
    _exit(127);
  }
  // A weightd that accepts the flags serves on: stopped after 30 s.
  int status = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return -1;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (pid < 0 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Runs weightd with `flags` to its exit; *err receives its stderr. The exit
// status, -1 if it did not exit normally.
int RunToExit(const std::vector<std::string>& flags, std::string* err) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/weightd-stderr-", getpid(), "-", rand(), ".txt");
  int code = -1;
  {
    Daemon daemon(flags, path);
    std::optional<int> status = daemon.WaitForExit(absl::Seconds(60));
    if (status && WIFEXITED(*status)) code = WEXITSTATUS(*status);
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  *err = text.str();
  unlink(path.c_str());
  return code;
}

// The last non-empty line of `text`.
std::string LastLine(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines.empty() ? "" : lines.back();
}

// A port that was free a moment ago (bound to 0, then closed).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// gRPC sets SO_REUSEPORT by default, so a second weightd on a taken port
// used to print "listening on" and serve beside the first.
TEST(Daemon, ASecondDaemonOnATakenPortExitsSayingTheAddressIsInUse) {
  const int metrics_port = FreePort();
  ASSERT_GT(metrics_port, 0);
  Daemon first({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                "--health_listen", "127.0.0.1:0", "--metrics_listen",
                absl::StrCat("127.0.0.1:", metrics_port), "--minloglevel", "2"});
  const std::string listening = first.ReadLine();
  ASSERT_TRUE(absl::StartsWith(listening, "listening on 127.0.0.1:")) << listening;
  const std::string health = first.ReadLine();
  ASSERT_TRUE(absl::StartsWith(health, "health on 127.0.0.1:")) << health;
  const std::string taken = AddressOf(listening);
  const std::string health_taken = AddressOf(health);
  const std::string metrics_taken = absl::StrCat("127.0.0.1:", metrics_port);

  std::string err;
  EXPECT_EQ(RunToExit({"--repository", TestDataDir() + "/repo", "--listen", taken}, &err), 1)
      << err;
  EXPECT_EQ(LastLine(err), absl::StrCat("weightd: cannot listen on ", taken,
                                        ": address already in use"))
      << err;

  EXPECT_EQ(RunToExit({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                       "--health_listen", health_taken},
                      &err),
            1)
      << err;
  EXPECT_EQ(LastLine(err), absl::StrCat("weightd: cannot listen on ", health_taken,
                                        " (--health_listen): address already in use"))
      << err;

  // cpp-httplib sets SO_REUSEPORT by default too.
  EXPECT_EQ(RunToExit({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                       "--metrics_listen", metrics_taken},
                      &err),
            1)
      << err;
  EXPECT_EQ(LastLine(err), absl::StrCat("weightd: cannot listen on ", metrics_taken,
                                        " (--metrics_listen): address already in use"))
      << err;
}

// gRPC truncated "127.0.0.1:99999" to port 34463 and took ":65536" as a
// random port.
TEST(Daemon, RefusesPortsOutOfRangeAndMissingPortsAsUsageErrors) {
  const std::string repo = TestDataDir() + "/repo";
  for (const std::string flag : {"--listen", "--health_listen", "--metrics_listen"}) {
    for (const std::string address :
         {"127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1", "127.0.0.1:", "[::1]:70000"}) {
      std::vector<std::string> flags = {"--repository", repo, flag, address};
      if (flag != "--listen") flags.insert(flags.end(), {"--listen", "127.0.0.1:0"});
      std::string err;
      EXPECT_EQ(RunToExit(flags, &err), 2) << flag << " " << address << ": " << err;
      EXPECT_TRUE(absl::StartsWith(LastLine(err), absl::StrCat("weightd: ", flag, ": \"",
                                                               address, "\" is not HOST:PORT")))
          << err;
    }
  }
}

// Writes `text` to `root`/`path`, creating directories.
void WriteRepoFile(const std::string& root, const std::string& path, const std::string& text) {
  const std::filesystem::path file = std::filesystem::path(root) / path;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A repository of broken models used to log only "serving ..." and
// "stopped": failed loads, skipped entries and bad configs went unsaid, and
// `list`/`manifest` showed nothing for nover/model.pt or zero/0/model.pt.
TEST(Daemon, LogsFailedLoadsAndSkippedEntriesAndListsWhy) {
  const std::string repo = absl::StrCat(::testing::TempDir(), "/broken-repo-", getpid());
  std::filesystem::remove_all(repo);
  WriteRepoFile(repo, "broken/1/model.pt", "this is not a checkpoint");
  WriteRepoFile(repo, "nover/model.pt", "misplaced");
  WriteRepoFile(repo, "zero/0/model.pt", "version 0 does not exist");
  WriteRepoFile(repo, "badcfg/model.pbtxt", "select: \"x\"\nno_such_field: 1\n");
  WriteRepoFile(repo, "badcfg/1/model.pt", "never read");
  const std::string err_path = repo + "-stderr.txt";
  Daemon daemon({"--repository", repo, "--listen", "127.0.0.1:0", "--preload", "--logtostderr",
                 "--drain_seconds", "1"},
                err_path);
  const std::string listening = daemon.ReadLine();
  ASSERT_TRUE(absl::StartsWith(listening, "listening on ")) << listening;

  std::unique_ptr<v1::WeightService::Stub> stub = v1::WeightService::NewStub(
      grpc::CreateChannel(AddressOf(listening), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    v1::ListModelsResponse models;
    ASSERT_TRUE(stub->ListModels(&context, v1::ListModelsRequest(), &models).ok());
    std::map<std::string, std::string> skipped;
    for (const v1::SkippedEntry& e : models.skipped()) skipped[e.path()] = e.reason();
    EXPECT_THAT(skipped["nover/model.pt"], ::testing::HasSubstr("nover/1/model.pt"));
    EXPECT_THAT(skipped["zero/0"], ::testing::HasSubstr("positive integer"));
    EXPECT_THAT(skipped["nover"], ::testing::HasSubstr("no version directory"));
    EXPECT_THAT(skipped["zero"], ::testing::HasSubstr("no version directory"));
  }
  {
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model("zero");
    v1::GetManifestResponse manifest;
    grpc::Status status = stub->GetManifest(&context, request, &manifest);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), ::testing::HasSubstr("zero/0 (version directories are"));
  }
  {
    // The server's own file: FAILED_PRECONDITION, the path said once.
    grpc::ClientContext context;
    v1::GetManifestRequest request;
    request.set_model("badcfg");
    v1::GetManifestResponse manifest;
    grpc::Status status = stub->GetManifest(&context, request, &manifest);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
    EXPECT_EQ(Count(status.error_message(), "model.pbtxt"), 1u) << status.error_message();
    EXPECT_THAT(status.error_message(), ::testing::HasSubstr("line 2"));
  }

  kill(daemon.pid(), SIGTERM);
  ASSERT_TRUE(daemon.WaitForExit(absl::Seconds(60)).has_value());
  std::ifstream in(err_path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string err = text.str();
  EXPECT_THAT(err, ::testing::HasSubstr("model \"broken\" version 1: load failed: "));
  EXPECT_THAT(err, ::testing::HasSubstr("broken/1/model.pt"));
  EXPECT_THAT(err, ::testing::HasSubstr("nover/model.pt: skipped, "));
  EXPECT_THAT(err, ::testing::HasSubstr("zero/0: skipped, "));
  EXPECT_THAT(err, ::testing::HasSubstr("model \"badcfg\" version 1 cannot be served: "));
  std::filesystem::remove_all(repo);
  unlink(err_path.c_str());
}

TEST(Daemon, FailsWithoutARepository) {
  EXPECT_EQ(ExitStatusOfBadStart({"--listen", "127.0.0.1:0"}), 2);
}

TEST(Daemon, RefusesZeroLoadThreads) {
  EXPECT_EQ(ExitStatusOfBadStart({"--repository", TestDataDir() + "/repo", "--listen",
                                  "127.0.0.1:0", "--load_threads", "0"}),
            2);
}

TEST(Daemon, EveryUsageErrorExitsTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {"stray"},                      // a positional argument
      {"--", "stray"},                // after the end of the flags
      {"--drain_seconds", "-1"},      // negative drain
      {"--drain_seconds=nan"},        // not a duration
      {"--no_such_flag"},             // unknown (gflags alone exits 1)
      {"--load_threads", "many"},     // not a number (gflags alone exits 1)
      {"--host_cache_bytes", "-1"},   // gflags alone reads 2^64-1
      {"--max_request_bytes", "0"},   // nothing could be received
      {"--keepalive_time_ms", "-5"},  // negative interval
      {"--listen"},                   // a value is missing
  };
  for (const std::vector<std::string>& flags : bad) {
    std::vector<std::string> args = {"--repository", TestDataDir() + "/repo", "--listen",
                                     "127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    EXPECT_EQ(ExitStatusOfBadStart(args), 2) << absl::StrJoin(flags, " ");
  }
}

TEST(Daemon, PrintsTheMetricsPortPickedForPortZero) {
  Daemon daemon({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                 "--health_listen", "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0",
                 "--minloglevel", "2"});
  ASSERT_GT(daemon.pid(), 0);
  EXPECT_TRUE(absl::StartsWith(daemon.ReadLine(), "listening on 127.0.0.1:"));
  EXPECT_TRUE(absl::StartsWith(daemon.ReadLine(), "health on 127.0.0.1:"));
  // A weightd that never prints the line would block ReadLine: SIGTERM
  // after 20 s ends its stdout.
  const pid_t pid = daemon.pid();
  absl::Notification read;
  std::thread watchdog([pid, &read] {
    if (!read.WaitForNotificationWithTimeout(absl::Seconds(20))) kill(pid, SIGTERM);
  });
  const std::string metrics = daemon.ReadLine();
  read.Notify();
  watchdog.join();
  EXPECT_TRUE(absl::StartsWith(metrics, "metrics on 127.0.0.1:")) << metrics;
  EXPECT_NE(metrics, "metrics on 127.0.0.1:0");
  kill(daemon.pid(), SIGTERM);
  ASSERT_TRUE(daemon.WaitForExit(absl::Seconds(60)).has_value());
}

std::string ReadFile(const std::string& path) {
  std::string out;
  if (FILE* f = fopen(path.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), f)) > 0) out.append(buffer, n);
    fclose(f);
  }
  return out;
}

TEST(Daemon, SighupWithoutATokensFileSaysSoAndNamesNoFile) {
  const std::string log = ::testing::TempDir() + "/sighup.log";
  Daemon daemon({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                 "--drain_seconds", "0"},
                log);
  ASSERT_GT(daemon.pid(), 0);
  ASSERT_TRUE(absl::StartsWith(daemon.ReadLine(), "listening on "));
  kill(daemon.pid(), SIGHUP);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!absl::StrContains(ReadFile(log), "SIGHUP") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  kill(daemon.pid(), SIGTERM);
  std::optional<int> status = daemon.WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  const std::string text = ReadFile(log);
  EXPECT_TRUE(absl::StrContains(text, "SIGHUP: no --auth_tokens_file, nothing to reload")) << text;
  EXPECT_FALSE(absl::StrContains(text, "reloaded \n")) << text;
}

// SIGTERM while a Fetch stream is open: health turns NOT_SERVING (on a Watch
// opened before, and on new Checks to the health port, which keeps answering
// while the main port drains), the stream still delivers every byte, and
// the process exits 0. The stream is held open by not reading it: flow
// control stops the server long before the 4 MiB are sent.
TEST(Daemon, SigtermDrainsAnOpenStreamAndReportsNotServing) {
  Daemon daemon({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                 "--health_listen", "127.0.0.1:0", "--drain_seconds", "20", "--minloglevel",
                 "2"});
  ASSERT_GT(daemon.pid(), 0);
  const std::string listening = daemon.ReadLine();
  ASSERT_TRUE(absl::StartsWith(listening, "listening on ")) << listening;
  const std::string health_line = daemon.ReadLine();
  ASSERT_TRUE(absl::StartsWith(health_line, "health on ")) << health_line;

  // No BDP probing: the receive window stays at 64 KiB, so the server cannot
  // finish sending before the test reads (which would end the drain early).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      AddressOf(listening), grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub =
      grpc::health::v1::Health::NewStub(channel);
  // Dropped once probed: an idle client connection (read by gRPC's backup
  // poller only every 5 s) would hold up the health port's own shutdown.
  std::unique_ptr<grpc::health::v1::Health::Stub> health_port_stub =
      grpc::health::v1::Health::NewStub(
          grpc::CreateChannel(AddressOf(health_line), grpc::InsecureChannelCredentials()));
  std::unique_ptr<v1::WeightService::Stub> stub = v1::WeightService::NewStub(channel);

  grpc::ClientContext watch_context;
  watch_context.set_deadline(In(absl::Seconds(120)));
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch =
      health_stub->Watch(&watch_context, HealthCheckRequest());
  HealthCheckResponse health;
  ASSERT_TRUE(watch->Read(&health));
  ASSERT_EQ(health.status(), HealthCheckResponse::SERVING);

  grpc::ClientContext fetch_context;
  fetch_context.set_deadline(In(absl::Seconds(120)));
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(4096);
  std::unique_ptr<grpc::ClientReader<v1::FetchResponse>> fetch =
      stub->Fetch(&fetch_context, request);
  v1::FetchResponse response;
  ASSERT_TRUE(fetch->Read(&response));
  ASSERT_TRUE(response.has_report()) << response.ShortDebugString();

  ASSERT_EQ(kill(daemon.pid(), SIGTERM), 0);
  const absl::Time sigterm = absl::Now();

  // The watch opened before the signal hears of the drain.
  ASSERT_TRUE(watch->Read(&health)) << "the health watch ended without NOT_SERVING";
  EXPECT_EQ(health.status(), HealthCheckResponse::NOT_SERVING);

  // A new probe on the health port sees NOT_SERVING while the stream drains.
  std::string last_probe;
  bool saw_not_serving = false;
  const absl::Time probe_deadline = absl::Now() + absl::Seconds(15);
  while (!saw_not_serving && absl::Now() < probe_deadline) {
    grpc::ClientContext context;
    context.set_deadline(In(absl::Seconds(5)));
    HealthCheckResponse check;
    grpc::Status status = health_port_stub->Check(&context, HealthCheckRequest(), &check);
    last_probe = status.ok() ? HealthCheckResponse::ServingStatus_Name(check.status())
                             : status.error_message();
    saw_not_serving = status.ok() && check.status() == HealthCheckResponse::NOT_SERVING;
    if (!saw_not_serving) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(saw_not_serving) << "last health port answer: " << last_probe;
  health_port_stub.reset();
  const absl::Time probed = absl::Now();

  // The open stream completes with every byte.
  std::vector<FetchedTensor> tensors;
  while (fetch->Read(&response)) {
    if (response.has_header()) {
      tensors.push_back({response.header(), ""});
    } else if (response.has_chunk()) {
      ASSERT_FALSE(tensors.empty());
      ASSERT_EQ(response.chunk().offset(), tensors.back().bytes.size());
      tensors.back().bytes += response.chunk().data();
    }
  }
  grpc::Status finished = fetch->Finish();
  const absl::Time fetched = absl::Now();
  EXPECT_TRUE(finished.ok()) << finished.error_code() << " " << finished.error_message();
  const nlohmann::json& expected = Expected()["big"];
  ASSERT_EQ(tensors.size(), expected.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(tensors[i].header.name(), expected[i]["name"]);
    EXPECT_EQ(tensors[i].bytes.size(), expected[i]["nbytes"].get<uint64_t>());
    EXPECT_EQ(Xxh64(tensors[i].bytes), expected[i]["checksum"]) << tensors[i].header.name();
  }

  std::optional<int> status = daemon.WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(status.has_value()) << "weightd did not exit after the drain";
  std::printf("probe %s, fetch %s, exit %s after SIGTERM\n",
              absl::FormatDuration(probed - sigterm).c_str(),
              absl::FormatDuration(fetched - sigterm).c_str(),
              absl::FormatDuration(absl::Now() - sigterm).c_str());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  (void)watch->Finish();
}

// A second SIGTERM while a stream holds the drain open ends the process at
// once (exit 1) instead of after --drain_seconds.
TEST(Daemon, SecondSigtermDuringTheDrainStopsAtOnce) {
  Daemon daemon({"--repository", TestDataDir() + "/repo", "--listen", "127.0.0.1:0",
                 "--drain_seconds", "120", "--minloglevel", "2"});
  ASSERT_GT(daemon.pid(), 0);
  const std::string listening = daemon.ReadLine();
  ASSERT_TRUE(absl::StartsWith(listening, "listening on ")) << listening;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      AddressOf(listening), grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub =
      grpc::health::v1::Health::NewStub(channel);
  std::unique_ptr<v1::WeightService::Stub> stub = v1::WeightService::NewStub(channel);
  grpc::ClientContext watch_context;
  watch_context.set_deadline(In(absl::Seconds(120)));
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch =
      health_stub->Watch(&watch_context, HealthCheckRequest());
  HealthCheckResponse health;
  ASSERT_TRUE(watch->Read(&health));
  ASSERT_EQ(health.status(), HealthCheckResponse::SERVING);

  // Held open by not reading it (see the test above).
  grpc::ClientContext fetch_context;
  fetch_context.set_deadline(In(absl::Seconds(120)));
  v1::FetchRequest request;
  request.set_model("big");
  request.set_chunk_bytes(4096);
  std::unique_ptr<grpc::ClientReader<v1::FetchResponse>> fetch =
      stub->Fetch(&fetch_context, request);
  v1::FetchResponse response;
  ASSERT_TRUE(fetch->Read(&response));

  ASSERT_EQ(kill(daemon.pid(), SIGTERM), 0);
  // Draining: two signals sent before the first is taken would be one.
  ASSERT_TRUE(watch->Read(&health));
  ASSERT_EQ(health.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(daemon.WaitForExit(absl::Milliseconds(300)).has_value())
      << "the drain ended by itself";
  ASSERT_EQ(kill(daemon.pid(), SIGTERM), 0);
  std::optional<int> status = daemon.WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(status.has_value()) << "weightd still drains after a second SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  fetch_context.TryCancel();
  watch_context.TryCancel();
}

}  // namespace
}  // namespace weightd::testing
