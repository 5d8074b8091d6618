// weightctl pull MODEL -o FILE: streams a served state dict into a file.
// Tensors go to the file as they arrive (CheckpointStreamWriter), so memory
// stays flat and a 1 GiB model costs about what Client::Load does.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/client_core.h"
#include "client/weightctl/background_writer.h"
#include "client/weightctl/commands.h"
#include "client/weightctl/match_flags.h"
#include "client/weightctl/remote_client.h"
#include "core/format/stream_writer.h"
#include "core/util/status_macros.h"

namespace weightd::cli {
namespace {

// One line on stderr, redrawn at most 10 times a second: bytes, rate, ETA.
class ProgressBar {
 public:
  void Update(uint64_t done, uint64_t total) {
    const absl::Time now = absl::Now();
    if (done < total && now - last_ < absl::Milliseconds(100)) return;
    last_ = now;
    const double seconds = std::max(1e-6, absl::ToDoubleSeconds(now - start_));
    const double rate = done / seconds;
    const int width = 30;
    const int filled = total == 0 ? width : static_cast<int>(width * double(done) / total);
    std::string eta = "--:--";
    if (rate > 0 && total >= done) {
      const int64_t left = static_cast<int64_t>((total - done) / rate);
      eta = absl::StrFormat("%d:%02d", left / 60, left % 60);
    }
    std::fprintf(stderr, "\r[%s%s] %s / %s  %s/s  ETA %s   ", std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), HumanBytes(done).c_str(),
                 HumanBytes(total).c_str(), HumanBytes(rate).c_str(), eta.c_str());
    drawn_ = true;
  }
  ~ProgressBar() {
    if (drawn_) std::fprintf(stderr, "\n");
  }

 private:
  absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
  bool drawn_ = false;
};

// The temporary file an interrupted pull removes. A signal handler may only
// make async-signal-safe calls, so the name waits in a fixed buffer.
char g_temp_path[PATH_MAX];
volatile sig_atomic_t g_have_temp = 0;

void RemoveTempFileAndDie(int signal_number) {
  if (g_have_temp) unlink(g_temp_path);
  // Die of the signal, so the parent sees how the pull ended.
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

constexpr int kFatalSignals[] = {SIGINT, SIGTERM, SIGHUP};

// Creates the writer with the fatal signals blocked, so that no signal falls
// between the temporary file's creation and its registration.
absl::StatusOr<std::unique_ptr<CheckpointStreamWriter>> CreateWriterRemovedOnSignal(
    const std::string& path) {
  sigset_t fatal, old;
  sigemptyset(&fatal);
  for (int s : kFatalSignals) sigaddset(&fatal, s);
  pthread_sigmask(SIG_BLOCK, &fatal, &old);
  absl::StatusOr<std::unique_ptr<CheckpointStreamWriter>> writer =
      CheckpointStreamWriter::Create(path);
  if (writer.ok() && (*writer)->temp_path().size() < sizeof(g_temp_path)) {
    std::memcpy(g_temp_path, (*writer)->temp_path().c_str(), (*writer)->temp_path().size() + 1);
    g_have_temp = 1;
    struct sigaction action = {};
    action.sa_handler = RemoveTempFileAndDie;
    sigemptyset(&action.sa_mask);
    for (int s : kFatalSignals) sigaction(s, &action, nullptr);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return writer;
}

// Puts each arriving tensor into the file, through the writer thread.
class FileReceiver : public TensorReceiver {
 public:
  explicit FileReceiver(CheckpointStreamWriter* writer) : writer_(writer) {}

  absl::Status Plan(std::vector<TensorDescriptor> tensors) override {
    if (tensors.empty()) {
      return absl::FailedPreconditionError(
          "no tensor to pull: the --include/--exclude patterns select none; nothing written");
    }
    count_ = tensors.size();
    WEIGHTD_RETURN_IF_ERROR(writer_->Start(std::move(tensors)));
    background_ = std::make_unique<BackgroundWriter>(writer_);
    return absl::OkStatus();
  }
  absl::Status Begin(size_t index) override { return background_->BeginTensor(index); }
  absl::Status Write(absl::string_view data) override {
    bytes_ += data.size();
    return background_->Write(data);
  }
  absl::Status End() override { return background_->EndTensor(); }
  // After the stream: waits for the writer thread; its first error.
  absl::Status Finish() { return background_ == nullptr ? absl::OkStatus() : background_->Finish(); }

  size_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }

 private:
  CheckpointStreamWriter* writer_;
  std::unique_ptr<BackgroundWriter> background_;
  size_t count_ = 0;
  uint64_t bytes_ = 0;
};

int RunPull(const ParsedArgs& args) {
  const std::string output = args.Get("output").value_or("");
  if (output.empty()) {
    return Fail("usage: weightctl pull MODEL -o FILE (see weightctl pull --help)", 2);
  }
  absl::StatusOr<int64_t> version = VersionFlag(args);
  if (!version.ok()) return Fail(version.status().message(), 2);
  absl::StatusOr<RuleSet> rules = RulesFromFlags(args);
  if (!rules.ok()) return Fail(rules.status().message(), 2);

  FetchSpec options;
  options.version = *version;
  options.select = args.Get("select").value_or("");
  options.rules = *rules;
  if (std::optional<std::string> dtype = args.Get("dtype")) {
    absl::StatusOr<DType> parsed = ParseDType(*dtype);
    if (!parsed.ok()) return Fail(parsed.status().message(), 2);
    if (!IsFloatingPoint(*parsed) && !args.Has("force")) {
      return Fail(absl::StrCat("--dtype ", DTypeName(*parsed),
                               " would truncate floating-point weights to ", DTypeName(*parsed),
                               "; add --force if that is what you want"),
                  2);
    }
    options.dtype = *parsed;
  }
  // The output's format and directory are checked before anything moves.
  absl::StatusOr<std::unique_ptr<CheckpointStreamWriter>> writer =
      CreateWriterRemovedOnSignal(output);
  if (!writer.ok()) {
    return Fail(writer.status().message(), absl::IsInvalidArgument(writer.status()) ? 2 : 1);
  }

  int code = 0;
  std::unique_ptr<ClientCore> client = MakeClientOrFail(args, &code);
  if (client == nullptr) return code;
  std::unique_ptr<ProgressBar> bar;
  if (isatty(STDERR_FILENO) && !args.Has("quiet")) {
    bar = std::make_unique<ProgressBar>();
    options.progress = [&bar](uint64_t done, uint64_t total) { bar->Update(done, total); };
  }
  FileReceiver receiver(writer->get());
  TransportInfo transport;
  options.transport = &transport;
  absl::Status fetched = client->FetchTo(args.positional[0], options, &receiver);
  bar.reset();
  // Over a Unix socket either path may be taken; say which (not for TCP,
  // where there is only the stream).
  if (absl::StartsWith(client->options().target, "unix:") && !args.Has("quiet") &&
      !transport.transport.empty()) {
    std::cerr << (transport.transport == "local"
                      ? std::string("path: same-node (fd handoff)")
                      : absl::StrCat("path: stream (", transport.note, ")"))
              << "\n";
  }
  // The writer thread's last writes may fail after the stream ended well
  // (a full disk); a receiver error during the stream is already `fetched`.
  absl::Status written = receiver.Finish();
  if (fetched.ok()) fetched = written;
  if (fetched.ok()) fetched = (*writer)->Commit();
  g_have_temp = 0;
  if (!fetched.ok()) {
    return Fail(Failure(fetched, client->options()), absl::IsInvalidArgument(fetched) ? 2 : 1);
  }
  if (!args.Has("quiet")) {
    std::cerr << "wrote " << output << ": " << receiver.count() << " tensors, "
              << HumanBytes(receiver.bytes()) << "\n";
  }
  return 0;
}

}  // namespace

Command PullCommand() {
  Command c;
  c.name = "pull";
  c.usage =
      "pull MODEL -o FILE [--server HOST:PORT] [credentials] [--version N] [--select P] "
      "[--dtype D [--force]] [--strip-prefix P]... [--add-prefix P]... "
      "[--rename PATTERN=REPLACEMENT]... [--include RE]... [--exclude RE]... [--quiet]";
  c.summary =
      "Streams a served model's state dict into FILE (.safetensors, or .pt/.pth/.bin as "
      "torch.save writes it), renamed by the rules; FILE appears only when complete. A progress "
      "bar shows on a terminal. With --server unix:PATH the same-node path is used (read-only "
      "descriptors of the server's pages, no bytes through the socket) and stderr says "
      "\"path: same-node (fd handoff)\" or \"path: stream (REASON)\".";
  c.flags = ServerFlags();
  c.flags.insert(
      c.flags.end(),
      {{"output", true, "FILE  the file to write (also -o FILE)", 'o'},
       {"version", true, "N  version (default: newest)"},
       {"select", true, "PATH  state dict inside the checkpoint (default: automatic)"},
       {"dtype", true, "D  cast on the server before sending (float16, bfloat16...)"},
       {"force", false, "allows a --dtype that is not floating point (int8, bool...)"},
       {"quiet", false, "no progress bar, no summary line"}});
  for (FlagSpec& f : RuleFlagSpecs(/*with_auto=*/false)) c.flags.push_back(std::move(f));
  c.min_positional = c.max_positional = 1;
  c.run = RunPull;
  return c;
}

}  // namespace weightd::cli
