// weightd: serves PyTorch checkpoints from a model repository over gRPC.
#include <signal.h>

#include <cstdio>
#include <iostream>

#include "absl/time/time.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/weight_server.h"

DEFINE_string(repository, "", "Model repository: <dir>/<model>/<version>/<checkpoint> or "
                              "<dir>/<name>.{pt,pth,safetensors} (required)");
DEFINE_string(listen, "127.0.0.1:50051",
              "HOST:PORT to serve on; port 0 picks a free port. The first stdout line says "
              "\"listening on HOST:PORT\"");
DEFINE_uint64(host_cache_bytes, 0,
              "Host cache budget in bytes (tensor bytes of loaded models); least recently used "
              "models no stream holds are evicted past it. 0: unlimited");
DEFINE_bool(preload, false, "Load the newest version of every model at start-up instead of on "
                            "first use");
DEFINE_double(drain_seconds, 10, "On SIGTERM/SIGINT: seconds RPCs in flight get to finish");

DECLARE_bool(help);
DECLARE_bool(helpshort);

namespace {

constexpr char kUsage[] =
    "serves PyTorch checkpoints over gRPC (weightd.v1.WeightService, AdminService, "
    "grpc.health.v1.Health, reflection).\n\n"
    "  weightd --repository DIR [--listen HOST:PORT] [--host_cache_bytes N] [--preload]\n"
    "          [--drain_seconds S]";

constexpr const char* kOwnFlags[] = {"repository", "listen", "host_cache_bytes", "preload",
                                     "drain_seconds"};

// gflags' --help lists every flag of every library linked in; ours first.
void PrintHelp() {
  std::cout << "weightd: " << kUsage << "\n\nFlags:\n";
  for (const char* name : kOwnFlags) {
    gflags::CommandLineFlagInfo info;
    if (gflags::GetCommandLineFlagInfo(name, &info)) {
      std::cout << "  --" << info.name << " (" << info.description << ")\n      type: "
                << info.type << "  default: "
                << (info.type == "string" ? "\"" + info.default_value + "\""
                                          : info.default_value)
                << "\n";
    }
  }
  std::cout << "\nLogging (glog): --logtostderr, --v=N, --log_dir=DIR; --helpfull lists all.\n";
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(kUsage);
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv, true);
  if (FLAGS_help || FLAGS_helpshort) {
    PrintHelp();
    return 0;
  }
  gflags::HandleCommandLineHelpFlags();
  FLAGS_logtostderr = FLAGS_logtostderr || FLAGS_log_dir.empty();
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_repository.empty()) {
    std::cerr << "weightd: --repository is required (see --help)\n";
    return 2;
  }

  // Signals are taken by sigwait below; block them before gRPC starts its
  // threads so none of those receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  weightd::ServerOptions options;
  options.repository = FLAGS_repository;
  options.listen = FLAGS_listen;
  options.host_cache_bytes = FLAGS_host_cache_bytes;
  options.preload = FLAGS_preload;
  absl::StatusOr<std::unique_ptr<weightd::WeightServer>> server =
      weightd::WeightServer::Start(options);
  if (!server.ok()) {
    LOG(ERROR) << server.status();
    std::cerr << "weightd: " << server.status() << "\n";
    return 1;
  }
  std::string host = FLAGS_listen.substr(0, FLAGS_listen.rfind(':'));
  std::printf("listening on %s:%d\n", host.c_str(), (*server)->port());
  std::fflush(stdout);
  LOG(INFO) << "serving " << FLAGS_repository << " on " << host << ":" << (*server)->port();

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LOG(INFO) << "signal " << signal_number << ": draining for " << FLAGS_drain_seconds << "s";
  (*server)->Shutdown(absl::Seconds(FLAGS_drain_seconds));
  server->reset();
  LOG(INFO) << "stopped";
  return 0;
}
