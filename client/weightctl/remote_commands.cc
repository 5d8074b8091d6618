// weightctl's commands against a server (--server HOST:PORT, default
// localhost:50051): list, manifest, match MODEL --target FILE, pull.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/client_core.h"
#include "client/weightctl/commands.h"
#include "client/weightctl/match_flags.h"
#include "core/util/address.h"
#include "core/format/checkpoint_io.h"
#include "nlohmann/json.hpp"

namespace weightd::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr char kDefaultServer[] = "localhost:50051";
const FlagSpec kServerFlag = {"server", true,
                              "HOST:PORT  the weightd server (default localhost:50051; "
                              "dns:///NAME:PORT for every replica)"};

std::vector<FlagSpec> ServerFlags() {
  std::vector<FlagSpec> flags = {kServerFlag};
  for (FlagSpec& f : CredentialFlagSpecs()) flags.push_back(std::move(f));
  return flags;
}

// A PEM file the channel will need, checked here: the client library falls
// back to the system roots on an unreadable --tls_ca, and a bad key only
// shows later as an opaque handshake failure.
absl::Status CheckPemFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--", flag, " ", path, ": cannot read (", std::strerror(errno), ")"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": not a PEM file"));
  }
  return absl::OkStatus();
}

// The client of --server with the credential flags; on a bad flag, the
// exit code and message are in the status (InvalidArgument: usage, exit 2).
absl::StatusOr<std::unique_ptr<ClientCore>> MakeClient(const ParsedArgs& args) {
  ClientOptions options;
  options.target = args.Get("server").value_or(kDefaultServer);
  // gRPC dials port 0 for "HOST" and truncates ports past 65535.
  if (absl::Status target = CheckTarget(options.target); !target.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--server ", target.message()));
  }
  // A CLI should answer quickly when nothing listens.
  options.max_attempts = 3;
  options.tls_ca = args.Get("tls_ca").value_or("");
  options.tls_cert = args.Get("tls_cert").value_or("");
  options.tls_key = args.Get("tls_key").value_or("");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  for (const char* flag : {"tls_ca", "tls_cert", "tls_key"}) {
    const std::string path = args.Get(flag).value_or("");
    if (path.empty()) continue;
    absl::Status pem = CheckPemFile(flag, path);
    if (!pem.ok()) return absl::FailedPreconditionError(pem.message());
  }
  // Empty: the client library takes WEIGHTD_TOKEN from the environment.
  options.token = args.Get("token").value_or("");
  return std::make_unique<ClientCore>(options);
}

// Runs MakeClient; on failure prints the reason and sets `*exit_code`.
std::unique_ptr<ClientCore> MakeClientOrFail(const ParsedArgs& args, int* exit_code) {
  absl::StatusOr<std::unique_ptr<ClientCore>> client = MakeClient(args);
  if (client.ok()) return *std::move(client);
  *exit_code = Fail(client.status().message(), absl::IsInvalidArgument(client.status()) ? 2 : 1);
  return nullptr;
}

absl::StatusOr<int64_t> VersionFlag(const ParsedArgs& args) {
  int64_t version = 0;
  const std::optional<std::string> text = args.Get("version");
  if (text && (!absl::SimpleAtoi(*text, &version) || version < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("--version must be a number, not ", *text));
  }
  return version;
}

std::string Failure(const absl::Status& status, const ClientOptions& options) {
  const std::string& server = options.target;
  if (absl::IsUnavailable(status)) {
    // A TLS server answers a plaintext client with a bare connection error.
    return absl::StrCat("server ", server, " unavailable: ", status.message(),
                        options.tls_ca.empty() && options.tls_cert.empty()
                            ? " (connected in plaintext; a TLS server needs --tls_ca)"
                            : "");
  }
  // Name the code: "unknown bearer token" alone does not say which side
  // (--token, WEIGHTD_TOKEN, the server's tokens file) to look at.
  if (absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status)) {
    return absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message(),
                        " (server ", server, "; token from --token or WEIGHTD_TOKEN)");
  }
  return std::string(status.message());
}

// ------------------------------------------------------------------ list

int RunList(const ParsedArgs& args) {
  int code = 0;
  std::unique_ptr<ClientCore> client = MakeClientOrFail(args, &code);
  if (client == nullptr) return code;
  std::vector<SkippedEntryInfo> skipped;
  absl::StatusOr<std::vector<ModelInfo>> models = client->ListModels(&skipped);
  if (!models.ok()) return Fail(Failure(models.status(), client->options()));
  if (args.Has("json")) {
    Json out = Json::array();
    for (const ModelInfo& m : *models) {
      Json versions = Json::array();
      for (const ModelVersionInfo& v : m.versions) {
        versions.push_back({{"version", v.version},
                            {"state", v.state},
                            {"reason", v.reason},
                            {"format", v.format},
                            {"path", v.path},
                            {"tensor_count", v.tensor_count},
                            {"bytes", v.bytes},
                            {"cache_tier", v.cache_tier},
                            {"select", v.select}});
      }
      out.push_back({{"name", m.name}, {"versions", versions}});
    }
    std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
    return 0;
  }
  std::cout << absl::StrFormat("%-24s %7s  %-9s %-20s %8s %10s  %s\n", "MODEL", "VERSION", "STATE",
                               "FORMAT", "TENSORS", "SIZE", "CACHE");
  for (const ModelInfo& m : *models) {
    for (const ModelVersionInfo& v : m.versions) {
      std::cout << absl::StrFormat("%-24s %7d  %-9s %-20s %8s %10s  %s%s\n", m.name, v.version,
                                   v.state, v.format.empty() ? "-" : v.format,
                                   v.tensor_count == 0 ? "-" : absl::StrCat(v.tensor_count),
                                   v.bytes == 0 ? "-" : HumanBytes(v.bytes),
                                   v.cache_tier.empty() ? "-" : v.cache_tier,
                                   v.reason.empty() ? "" : absl::StrCat("  (", v.reason, ")"));
    }
  }
  // What the server does not serve, so a misplaced file does not just vanish.
  if (!skipped.empty()) {
    std::cout << "\nskipped (" << skipped.size() << "):\n";
    for (const SkippedEntryInfo& e : skipped) std::cout << "  " << e.path << ": " << e.reason << "\n";
  }
  return 0;
}

// -------------------------------------------------------------- manifest

int RunManifest(const ParsedArgs& args) {
  absl::StatusOr<int64_t> version = VersionFlag(args);
  if (!version.ok()) return Fail(version.status().message(), 2);
  int code = 0;
  std::unique_ptr<ClientCore> client = MakeClientOrFail(args, &code);
  if (client == nullptr) return code;
  absl::StatusOr<Manifest> manifest =
      client->GetManifest(args.positional[0], *version, args.Get("select").value_or(""));
  if (!manifest.ok()) return Fail(Failure(manifest.status(), client->options()));
  if (args.Has("json")) {
    Json tensors = Json::array();
    for (const ManifestTensor& t : manifest->tensors) {
      tensors.push_back({{"name", t.name},
                         {"dtype", std::string(DTypeName(t.dtype))},
                         {"shape", t.shape},
                         {"nbytes", t.nbytes},
                         {"checksum", t.checksum}});
    }
    Json out = {{"model", manifest->model},
                {"version", manifest->version},
                {"format", manifest->format},
                {"select", manifest->select},
                {"tensors", tensors},
                {"metadata", Json::parse(manifest->metadata_json, nullptr, false)}};
    std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
    return 0;
  }
  uint64_t total = 0;
  for (const ManifestTensor& t : manifest->tensors) total += t.nbytes;
  std::cout << manifest->model << " version " << manifest->version << " (" << manifest->format
            << (manifest->select.empty() ? "" : absl::StrCat(", select ", manifest->select))
            << "): " << manifest->tensors.size() << " tensors, " << HumanBytes(total) << "\n";
  if (manifest->metadata_json != "{}") std::cout << "metadata: " << manifest->metadata_json << "\n";
  std::cout << "\n";
  for (const ManifestTensor& t : manifest->tensors) {
    std::cout << absl::StrFormat("  %-48s %-9s %-20s %10s  %s\n", t.name, DTypeName(t.dtype),
                                 ShapeToString(t.shape), HumanBytes(t.nbytes), t.checksum);
  }
  return 0;
}

// ----------------------------------------------------------------- match

}  // namespace

int RunRemoteMatch(const ParsedArgs& args) {
  const std::optional<std::string> target_file = args.Get("target");
  if (!target_file) return Fail("match MODEL needs --target FILE (the module's state dict)", 2);
  absl::StatusOr<int64_t> version = VersionFlag(args);
  if (!version.ok()) return Fail(version.status().message(), 2);
  absl::StatusOr<MatchOptions> options = MatchOptionsFromFlags(args);
  if (!options.ok()) return Fail(options.status().message(), 2);
  absl::StatusOr<RuleSet> rules = RulesFromFlags(args);
  if (!rules.ok()) return Fail(rules.status().message(), 2);
  absl::StatusOr<std::vector<TensorEntry>> target =
      ReadEntries(*target_file, args.Get("target-select").value_or(""), "target-select");
  if (!target.ok()) return Fail(target.status().message());

  MatchSpec spec;
  spec.version = *version;
  spec.select = args.Get("select").value_or("");
  spec.set_rule_set(*rules);
  spec.on_shape_mismatch = options->on_shape_mismatch;
  spec.strict = options->strict;
  spec.allow_empty = options->allow_empty;
  int code = 0;
  std::unique_ptr<ClientCore> client = MakeClientOrFail(args, &code);
  if (client == nullptr) return code;
  absl::StatusOr<MatchReport> report = client->Match(args.positional[0], *target, spec);
  if (!report.ok()) {
    return Fail(Failure(report.status(), client->options()),
                absl::IsInvalidArgument(report.status()) ? 2 : 1);
  }
  return PrintMatchReport(*report, args.Has("json"));
}

namespace {

// ------------------------------------------------------------------ pull

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

int RunPull(const ParsedArgs& args) {
  // `pull MODEL -o FILE`: the parser keeps "-o" as a positional.
  std::string output = args.Get("output").value_or("");
  std::vector<std::string> positional = args.positional;
  if (positional.size() == 3 && positional[1] == "-o") {
    output = positional[2];
    positional.resize(1);
  }
  if (positional.size() != 1 || output.empty()) {
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
    options.dtype = *parsed;
  }
  std::unique_ptr<ProgressBar> bar;
  if (isatty(STDERR_FILENO) && !args.Has("quiet")) {
    bar = std::make_unique<ProgressBar>();
    options.progress = [&bar](uint64_t done, uint64_t total) { bar->Update(done, total); };
  }
  int code = 0;
  std::unique_ptr<ClientCore> client = MakeClientOrFail(args, &code);
  if (client == nullptr) return code;
  // Each tensor arrives into a buffer of its own: a state dict the core
  // writers take as is.
  absl::StatusOr<StateDict> state_dict = client->FetchHost(positional[0], options);
  bar.reset();
  if (!state_dict.ok()) {
    return Fail(Failure(state_dict.status(), client->options()),
                absl::IsInvalidArgument(state_dict.status()) ? 2 : 1);
  }
  uint64_t bytes = 0;
  for (const auto& [name, tensor] : *state_dict) bytes += tensor.nbytes();
  absl::Status written = WriteCheckpoint(output, *state_dict);
  if (!written.ok()) return Fail(written.message());
  std::cerr << "wrote " << output << ": " << state_dict->size() << " tensors, " << HumanBytes(bytes)
            << "\n";
  return 0;
}

}  // namespace

std::vector<FlagSpec> CredentialFlagSpecs() {
  return {
      {"tls_ca", true, "PEM  CA that signed the server's certificate; turns on TLS"},
      {"tls_cert", true, "PEM  client certificate for mTLS (with --tls_key)"},
      {"tls_key", true, "PEM  private key of --tls_cert"},
      {"token", true,
       "TOKEN  bearer token (default: $WEIGHTD_TOKEN; prefer the variable, a command "
       "line is visible to other users)"},
  };
}

Command ListCommand() {
  Command c;
  c.name = "list";
  c.usage = "list [--server HOST:PORT] [credentials] [--json]";
  c.summary = "Lists the server's models and versions: state, format, tensors, size, cache tier.";
  c.flags = ServerFlags();
  c.flags.push_back({"json", false, "prints one JSON array of models"});
  c.run = RunList;
  return c;
}

Command ManifestCommand() {
  Command c;
  c.name = "manifest";
  c.usage = "manifest MODEL [--server HOST:PORT] [credentials] [--version N] [--select P] [--json]";
  c.summary = "Lists a served model's tensors (name, dtype, shape, bytes, checksum) and metadata.";
  c.flags = ServerFlags();
  c.flags.insert(c.flags.end(),
                 {{"version", true, "N  version (default: newest)"},
                  {"select", true, "PATH  state dict inside the checkpoint (default: automatic)"},
                  {"json", false, "prints one JSON object"}});
  c.min_positional = c.max_positional = 1;
  c.run = RunManifest;
  return c;
}

Command PullCommand() {
  Command c;
  c.name = "pull";
  c.usage =
      "pull MODEL -o FILE [--server HOST:PORT] [credentials] [--version N] [--select P] [--dtype D] "
      "[--strip-prefix P]... [--add-prefix P]... [--rename PATTERN=REPLACEMENT]... "
      "[--include RE]... [--exclude RE]...";
  c.summary =
      "Downloads a served model's state dict into FILE (.safetensors, or .pt/.pth/.bin as "
      "torch.save writes it), renamed by the rules. A progress bar shows on a terminal.";
  c.flags = ServerFlags();
  c.flags.insert(
      c.flags.end(),
      {{"output", true, "FILE  same as -o FILE"},
       {"version", true, "N  version (default: newest)"},
       {"select", true, "PATH  state dict inside the checkpoint (default: automatic)"},
       {"dtype", true, "D  cast on the server before sending (float16, bfloat16...)"},
       {"quiet", false, "no progress bar"}});
  for (FlagSpec& f : RuleFlagSpecs(/*with_auto=*/false)) c.flags.push_back(std::move(f));
  c.min_positional = 1;
  c.max_positional = 3;
  c.run = RunPull;
  return c;
}

}  // namespace weightd::cli
