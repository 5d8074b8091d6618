// weightd: serves PyTorch checkpoints from a model repository over gRPC.
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/util/address.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/weight_server.h"

DEFINE_string(repository, "", "Model repository: <dir>/<model>/<version>/<checkpoint> or "
                              "<dir>/<name>.{pt,pth,safetensors}, and Hugging Face hub cache "
                              "entries <dir>/models--ORG--NAME (served as ORG--NAME; e.g. "
                              "~/.cache/huggingface/hub) (required)");
DEFINE_bool(follow_external_symlinks, false,
            "Serve checkpoints through symlinks that resolve outside --repository (refused "
            "otherwise). Risk: anyone who can write the repository can then make weightd read "
            "and serve any file weightd can read");
DEFINE_string(model_config_dir, "",
              "Directory of <model>.pbtxt files (ModelConfig text format, e.g. a mounted "
              "ConfigMap); each replaces <repository>/<model>/model.pbtxt as a whole. A file that "
              "does not parse fails its model, naming the file. Re-read on Rescan. Empty: none");
DEFINE_string(listen, "127.0.0.1:50051",
              "Addresses to serve on, comma-separated: HOST:PORT (port 0 picks a free port) and "
              "unix:PATH (a Unix socket; same-node clients also get the zero-copy path through "
              "the side-channel socket PATH.fds beside it). The first stdout lines say "
              "\"listening on ADDRESS\", one per address in the order given");
DEFINE_string(unix_socket_mode, "0660",
              "Permission bits (octal) of the unix:PATH sockets and their .fds side channels; "
              "anyone who may connect can fetch what the tokens allow");
DEFINE_string(unix_socket_group, "",
              "Group (name or numeric gid) of the unix:PATH sockets and their .fds side "
              "channels. Empty: the daemon's own group");
DEFINE_uint64(host_cache_bytes, 0,
              "Host cache budget in bytes (tensor bytes of loaded models); least recently used "
              "models no stream holds are evicted past it. 0: unlimited");
DEFINE_uint64(gpu_cache_bytes, 0,
              "GPU cache budget in bytes per device, for models whose model.pbtxt says "
              "cache_tier: \"cuda:N\". Device memory counts from upload until freed (a model "
              "evicted while a stream reads it counts until that stream ends); least recently "
              "used models no stream holds are evicted past it, and a model that still does "
              "not fit is served from host memory (ListModels' cache_note says why). 0: half "
              "of each device's memory");
DEFINE_string(gpu_fetch_source, "device",
              "Where a TCP Fetch of a GPU-resident model reads its bytes: \"device\" (the GPU "
              "copy, through pinned staging buffers, double-buffered) or \"host\" (the "
              "checkpoint's mmap, as for host-tier models)");
DEFINE_bool(preload, false, "Load the newest version of every model at start-up instead of on "
                            "first use");
DEFINE_int32(load_threads, 8, "Threads that load checkpoints and run the GetManifest/Match/Fetch "
                              "work waiting on a load, so gRPC's own threads (health checks "
                              "included) never block on a file; distinct models load in "
                              "parallel up to this many");
DEFINE_double(drain_seconds, 10, "On SIGTERM/SIGINT: seconds RPCs in flight get to finish; a "
                                 "second SIGTERM/SIGINT during the drain stops at once (exit 1)");

DEFINE_string(tls_cert, "", "PEM server certificate (chain); with --tls_key the port speaks TLS "
                            "only");
DEFINE_string(tls_key, "", "PEM private key of --tls_cert");
DEFINE_string(tls_client_ca, "", "PEM CA bundle; clients must present a certificate it signed "
                                 "(mTLS). Needs --tls_cert");
DEFINE_string(auth_tokens_file, "",
              "Bearer tokens, one \"TOKEN ROLE\" per line (ROLE read or admin, # comments); "
              "re-read on SIGHUP. WeightService needs read, AdminService admin; health and "
              "reflection stay open. Empty: no token check");
DEFINE_string(metrics_listen, "",
              "HOST:PORT for Prometheus metrics at GET /metrics; port 0 picks one. With it, a "
              "stdout line (after the health one) says \"metrics on HOST:PORT\". Empty: off");
DEFINE_string(health_listen, "",
              "HOST:PORT of a plaintext port serving grpc.health.v1.Health only (no auth), for "
              "probes that cannot speak TLS such as the kubelet's gRPC probes. Same health state "
              "as --listen (NOT_SERVING while draining). With it, the second stdout line says "
              "\"health on HOST:PORT\". Empty: off");
DEFINE_int32(max_request_bytes, 4 << 20, "Largest request message accepted (RESOURCE_EXHAUSTED "
                                         "above)");
DEFINE_int32(max_concurrent_streams, 0, "HTTP/2 streams one connection may open at once; 0: "
                                        "gRPC's default");
DEFINE_uint32(max_active_fetches, 0, "Fetch streams served at once; more get RESOURCE_EXHAUSTED. "
                                     "0: unlimited");
DEFINE_uint32(max_target_entries, 200000, "Target tensors plus keys per Match/Fetch request "
                                          "(INVALID_ARGUMENT above); 0: unlimited");
DEFINE_uint32(max_rules, 1000, "Rules plus include/exclude/ignore patterns per request "
                               "(INVALID_ARGUMENT above); 0: unlimited");
DEFINE_uint32(max_pattern_bytes, 4096, "Bytes of one rule or pattern string (INVALID_ARGUMENT "
                                       "above); 0: unlimited");
DEFINE_int32(min_client_ping_interval_ms, 10000,
             "Keepalive enforcement: clients pinging more often without data get GOAWAY");
DEFINE_int32(keepalive_time_ms, 60000, "Server keepalive pings on idle connections; 0: off");

DECLARE_bool(help);
DECLARE_bool(helpshort);

namespace {

constexpr char kUsage[] =
    "serves PyTorch checkpoints over gRPC (weightd.v1.WeightService, AdminService, "
    "grpc.health.v1.Health, reflection).\n\n"
    "  weightd --repository DIR [--model_config_dir DIR] [--follow_external_symlinks]\n"
    "          [--listen HOST:PORT,unix:PATH,...] [--unix_socket_mode 0660]\n"
    "          [--unix_socket_group GROUP]\n"
    "          [--host_cache_bytes N] [--gpu_cache_bytes N] [--gpu_fetch_source device|host]\n"
    "          [--preload] [--load_threads N] [--drain_seconds S]\n"
    "          [--tls_cert PEM --tls_key PEM [--tls_client_ca PEM]]\n"
    "          [--auth_tokens_file FILE] [--metrics_listen HOST:PORT] [--health_listen HOST:PORT]\n"
    "          [limits...]";

constexpr const char* kOwnFlags[] = {
    "repository",        "model_config_dir",       "follow_external_symlinks", "listen",
    "unix_socket_mode",  "unix_socket_group",
    "host_cache_bytes",  "gpu_cache_bytes",        "gpu_fetch_source",
    "preload",           "load_threads",
    "drain_seconds",
    "tls_cert",          "tls_key",                "tls_client_ca",
    "auth_tokens_file",  "metrics_listen",         "health_listen",
    "max_request_bytes", "max_concurrent_streams", "max_active_fetches",
    "max_target_entries", "max_rules",             "max_pattern_bytes",
    "min_client_ping_interval_ms", "keepalive_time_ms"};

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

int UsageError(const std::string& message) {
  std::cerr << "weightd: " << message << " (see --help)\n";
  return 2;
}

// gflags exits 1 on an unknown flag or a bad value, and leaves arguments
// that are not flags in argv unnoticed. Checked here first, so that every
// usage error exits 2. Empty: the command line is fine.
std::string CheckCommandLine(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc) return absl::StrCat("unexpected argument \"", argv[i + 1], "\"");
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::StrCat("unexpected argument \"", arg, "\"; weightd takes flags only");
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) {
      if (absl::StartsWith(name, "no") && !value &&
          gflags::GetCommandLineFlagInfo(name.substr(2).c_str(), &info) && info.type == "bool") {
        continue;
      }
      return absl::StrCat("unknown flag --", name);
    }
    if (info.type == "bool" && !value) continue;
    if (!value) {
      if (i + 1 >= argc) return absl::StrCat("flag --", name, " needs a value");
      value = argv[++i];
    }
    // gflags reads "-1" as 2^64-1 for unsigned flags.
    if (absl::StartsWith(info.type, "uint") && absl::StartsWith(*value, "-")) {
      return absl::StrCat("--", name, " must not be negative, not ", *value);
    }
    if (gflags::SetCommandLineOption(name.c_str(), value->c_str()).empty()) {
      return absl::StrCat("bad value for --", name, " (", info.type, "): \"", *value, "\"");
    }
  }
  return "";
}

// "0660" -> 0660; -1 unless 1-4 octal digits of at most 0777.
int ParseOctalMode(const std::string& text) {
  if (text.empty() || text.size() > 4) return -1;
  int mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return -1;
    mode = mode * 8 + (c - '0');
  }
  return mode <= 0777 ? mode : -1;
}

// Ranges gflags cannot express. Empty: all fine.
std::string CheckFlagValues() {
  if (FLAGS_repository.empty()) return "--repository is required";
  if (FLAGS_load_threads < 1 || FLAGS_load_threads > 1024) {
    return absl::StrCat("--load_threads must be between 1 and 1024, not ", FLAGS_load_threads);
  }
  if (FLAGS_gpu_fetch_source != "device" && FLAGS_gpu_fetch_source != "host") {
    return absl::StrCat("--gpu_fetch_source must be \"device\" or \"host\", not \"",
                        FLAGS_gpu_fetch_source, "\"");
  }
  if (!std::isfinite(FLAGS_drain_seconds) || FLAGS_drain_seconds < 0) {
    return absl::StrCat("--drain_seconds must be 0 or more, not ", FLAGS_drain_seconds);
  }
  if (FLAGS_max_request_bytes < 1) {
    return absl::StrCat("--max_request_bytes must be positive, not ", FLAGS_max_request_bytes);
  }
  if (ParseOctalMode(FLAGS_unix_socket_mode) < 0) {
    return absl::StrCat("--unix_socket_mode must be octal permission bits such as 0660, not \"",
                        FLAGS_unix_socket_mode, "\"");
  }
  for (const auto& [name, value] :
       {std::pair<const char*, int>{"max_concurrent_streams", FLAGS_max_concurrent_streams},
        {"min_client_ping_interval_ms", FLAGS_min_client_ping_interval_ms},
        {"keepalive_time_ms", FLAGS_keepalive_time_ms}}) {
    if (value < 0) return absl::StrCat("--", name, " must not be negative, not ", value);
  }
  return "";
}

// The host part of a HOST:PORT flag, for the "... on HOST:PORT" lines.
std::string HostOf(const std::string& listen) { return listen.substr(0, listen.rfind(':')); }

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(kUsage);
  if (std::string error = CheckCommandLine(argc, argv); !error.empty()) return UsageError(error);
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv, true);
  if (FLAGS_help || FLAGS_helpshort) {
    PrintHelp();
    return 0;
  }
  gflags::HandleCommandLineHelpFlags();
  FLAGS_logtostderr = FLAGS_logtostderr || FLAGS_log_dir.empty();
  google::InitGoogleLogging(argv[0]);
  if (std::string error = CheckFlagValues(); !error.empty()) return UsageError(error);

  // gRPC would truncate a port past 65535 to 16 bits and dial or bind port 0
  // for a missing one; refuse both before anything starts.
  for (absl::string_view one : absl::StrSplit(FLAGS_listen, ',')) {
    absl::Status address = weightd::CheckListenAddress(absl::StripAsciiWhitespace(one));
    if (!address.ok()) {
      std::cerr << "weightd: --listen: " << address.message() << "\n";
      return 2;
    }
  }
  for (const auto& [flag, value, unix_ok] :
       {std::tuple<const char*, const std::string&, bool>{"health_listen", FLAGS_health_listen, true},
        {"metrics_listen", FLAGS_metrics_listen, false}}) {
    if (value.empty()) continue;
    absl::Status address = unix_ok ? weightd::CheckListenAddress(value)
                                   : weightd::ParseHostPort(value).status();
    if (!address.ok()) {
      std::cerr << "weightd: --" << flag << ": " << address.message() << "\n";
      return 2;
    }
  }

  // Signals are taken by sigwait below; block them before gRPC starts its
  // threads so none of those receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  weightd::ServerOptions options;
  options.repository = FLAGS_repository;
  options.model_config_dir = FLAGS_model_config_dir;
  options.follow_external_symlinks = FLAGS_follow_external_symlinks;
  options.listen = FLAGS_listen;
  options.unix_socket_mode = static_cast<uint32_t>(ParseOctalMode(FLAGS_unix_socket_mode));
  options.unix_socket_group = FLAGS_unix_socket_group;
  options.host_cache_bytes = FLAGS_host_cache_bytes;
  options.gpu_cache_bytes = FLAGS_gpu_cache_bytes;
  options.gpu_fetch_from_device = FLAGS_gpu_fetch_source == "device";
  options.preload = FLAGS_preload;
  options.load_threads = FLAGS_load_threads;
  options.on_warning = [](absl::string_view warning) { LOG(WARNING) << warning; };
  options.on_load_failure = [](absl::string_view failure) { LOG(ERROR) << failure; };
  options.tls_cert = FLAGS_tls_cert;
  options.tls_key = FLAGS_tls_key;
  options.tls_client_ca = FLAGS_tls_client_ca;
  options.auth_tokens_file = FLAGS_auth_tokens_file;
  options.metrics_listen = FLAGS_metrics_listen;
  options.health_listen = FLAGS_health_listen;
  options.max_request_bytes = FLAGS_max_request_bytes;
  options.max_concurrent_streams = FLAGS_max_concurrent_streams;
  options.max_active_fetches = FLAGS_max_active_fetches;
  options.request_limits.max_target_entries = FLAGS_max_target_entries;
  options.request_limits.max_rules = FLAGS_max_rules;
  options.request_limits.max_pattern_bytes = FLAGS_max_pattern_bytes;
  options.min_client_ping_interval_ms = FLAGS_min_client_ping_interval_ms;
  options.keepalive_time_ms = FLAGS_keepalive_time_ms;
  absl::StatusOr<std::unique_ptr<weightd::WeightServer>> server =
      weightd::WeightServer::Start(options);
  if (!server.ok()) {
    // One line on stderr (glog would add a second one there).
    if (!FLAGS_logtostderr) LOG(ERROR) << server.status();
    std::cerr << "weightd: " << server.status().message() << "\n";
    return 1;
  }
  for (const std::string& address : (*server)->listening()) {
    std::printf("listening on %s\n", address.c_str());
    LOG(INFO) << "serving " << FLAGS_repository << " on " << address;
  }
  std::fflush(stdout);
  for (const std::string& path : (*server)->side_channel_paths()) {
    LOG(INFO) << "same-node side channel on " << path;
  }
  LOG(INFO) << (*server)->store().gpu_tier().Describe();

  if ((*server)->health_port() != 0) {
    // Second stdout line, for scripts that pass port 0.
    std::printf("health on %s:%d\n", HostOf(FLAGS_health_listen).c_str(),
                (*server)->health_port());
    std::fflush(stdout);
    LOG(INFO) << "health on " << FLAGS_health_listen << " (port " << (*server)->health_port()
              << ", plaintext)";
  }
  if ((*server)->metrics_port() != 0) {
    std::printf("metrics on %s:%d\n", HostOf(FLAGS_metrics_listen).c_str(),
                (*server)->metrics_port());
    std::fflush(stdout);
    LOG(INFO) << "metrics on " << FLAGS_metrics_listen << " (port " << (*server)->metrics_port()
              << ")";
  }

  // This thread, not a signal handler, takes the signals: SIGHUP reloads the
  // tokens here, SIGTERM/SIGINT end the loop.
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    if (FLAGS_auth_tokens_file.empty()) {
      LOG(INFO) << "SIGHUP: no --auth_tokens_file, nothing to reload";
      continue;
    }
    absl::Status reloaded = (*server)->ReloadTokens();
    if (reloaded.ok()) {
      LOG(INFO) << "SIGHUP: reloaded " << FLAGS_auth_tokens_file;
    } else {
      LOG(ERROR) << "SIGHUP: " << reloaded << "; the previous tokens stay in force";
    }
  }
  LOG(INFO) << "signal " << signal_number << ": draining for " << FLAGS_drain_seconds
            << "s (send it again to stop at once)";
  // An operator who signals again does not want to wait for the drain.
  std::thread([signals] {
    int again = 0;
    while (sigwait(&signals, &again) == 0 && again == SIGHUP) {
    }
    LOG(WARNING) << "signal " << again << " during the drain: stopping now";
    google::FlushLogFiles(google::GLOG_INFO);
    std::_Exit(1);
  }).detach();
  (*server)->Shutdown(absl::Seconds(FLAGS_drain_seconds));
  server->reset();
  LOG(INFO) << "stopped";
  return 0;
}
