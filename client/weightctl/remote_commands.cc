// weightctl's commands against a server (--server HOST:PORT, default
// $WEIGHTD_TARGET, else localhost:50051): list, manifest, match MODEL
// --target FILE. pull is in pull_command.cc.
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client_core.h"
#include "client/weightctl/commands.h"
#include "client/weightctl/match_flags.h"
#include "client/weightctl/remote_client.h"
#include "core/format/checkpoint_io.h"
#include "nlohmann/json.hpp"

namespace weightd::cli {
namespace {

using Json = nlohmann::ordered_json;

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
                            {"select", v.select},
                            {"cache_note", v.cache_note}});
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
                                   v.reason.empty() ? "" : absl::StrCat("  (", v.reason, ")"))
                << (v.cache_note.empty() ? "" : absl::StrCat("    ", v.cache_note, "\n"));
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
  const std::string which = args.Get("checksums").value_or("all");
  ManifestChecksums checksums = ManifestChecksums::kAll;
  if (which == "known") {
    checksums = ManifestChecksums::kKnown;
  } else if (which == "none") {
    checksums = ManifestChecksums::kNone;
  } else if (which != "all") {
    return Fail(absl::StrCat("--checksums ", which, ": expected all, known or none"), 2);
  }
  int code = 0;
  std::unique_ptr<ClientCore> client = MakeClientOrFail(args, &code);
  if (client == nullptr) return code;
  absl::StatusOr<Manifest> manifest = client->GetManifest(
      args.positional[0], *version, args.Get("select").value_or(""), checksums);
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
                                 ShapeToString(t.shape), HumanBytes(t.nbytes),
                                 t.checksum.empty() ? "-" : t.checksum);
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
  c.usage =
      "manifest MODEL [--server HOST:PORT] [credentials] [--version N] [--select P] "
      "[--checksums all|known|none] [--json]";
  c.summary = "Lists a served model's tensors (name, dtype, shape, bytes, checksum) and metadata.";
  c.flags = ServerFlags();
  c.flags.insert(c.flags.end(),
                 {{"version", true, "N  version (default: newest)"},
                  {"select", true, "PATH  state dict inside the checkpoint (default: automatic)"},
                  {"checksums", true,
                   "all|known|none  all (default) makes the server hash every tensor not "
                   "hashed yet (seconds for a large model); known shows only those it already "
                   "has and none skips them: the others show as - (\"\" in --json)"},
                  {"json", false, "prints one JSON object"}});
  c.min_positional = c.max_positional = 1;
  c.run = RunManifest;
  return c;
}

}  // namespace weightd::cli
