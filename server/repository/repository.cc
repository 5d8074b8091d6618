#include "server/repository/repository.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "server/repository/hf_cache.h"
#include "server/repository/scan_util.h"

namespace weightd {
namespace {

namespace fs = std::filesystem;
using internal_repository::FillIdentity;
using internal_repository::kOutsideReason;
using internal_repository::ScanContext;
using internal_repository::SkipFn;

constexpr char kConfigFile[] = "model.pbtxt";

bool IsCheckpointFile(absl::string_view name) {
  return absl::EndsWith(name, ".pt") || absl::EndsWith(name, ".pth") ||
         absl::EndsWith(name, ".bin") || absl::EndsWith(name, ".safetensors") ||
         absl::EndsWith(name, ".safetensors.index.json");
}

// Collects TextFormat errors with their line and column (1-based).
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat("line ", line + 1, " column ", column + 1, ": ", message));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {}
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

VersionEntry ScanVersionDir(const fs::path& dir, int64_t version, const ScanContext& ctx) {
  const std::string& root = ctx.root;
  VersionEntry entry;
  entry.version = version;
  std::string rel = fs::relative(dir, root).string();
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    std::string name = item.path().filename().string();
    if (name.empty() || name[0] == '.' || !IsCheckpointFile(name)) continue;
    // Shards of a sharded safetensors set sit beside their index.
    found.push_back(name);
  }
  if (ec) {
    entry.error = absl::NotFoundError(absl::StrCat(rel, ": ", ec.message()));
    return entry;
  }
  std::vector<std::string> indexes;
  for (const std::string& name : found) {
    if (absl::EndsWith(name, ".safetensors.index.json")) indexes.push_back(name);
  }
  std::vector<std::string>& candidates = indexes.empty() ? found : indexes;
  std::sort(candidates.begin(), candidates.end());
  if (candidates.size() != 1) {
    entry.error = absl::FailedPreconditionError(
        candidates.empty()
            ? absl::StrCat(rel, ": no checkpoint file (*.pt, *.pth, *.bin, *.safetensors, "
                                "*.safetensors.index.json)")
            : absl::StrCat(rel, ": more than one checkpoint file: ",
                           absl::StrJoin(candidates, ", ")));
    return entry;
  }
  fs::path file = dir / candidates[0];
  entry.path = file.string();
  entry.relative_path = absl::StrCat(rel, "/", candidates[0]);
  if (!ctx.Allowed(file)) {
    entry.error =
        absl::FailedPreconditionError(absl::StrCat(entry.relative_path, ": ", kOutsideReason));
    return entry;
  }
  FillIdentity(entry.path, &entry);
  return entry;
}

ModelEntry ScanModelDir(const fs::path& dir, const std::string& name, const ScanContext& ctx) {
  const SkipFn& skip = ctx.skip;
  ModelEntry model;
  model.name = name;
  model.source = name;
  fs::path config = dir / kConfigFile;
  std::error_code ec;
  if (fs::exists(config, ec)) {
    if (!ctx.Allowed(config)) {
      model.config_error = absl::FailedPreconditionError(
          absl::StrCat(name, "/", kConfigFile, ": ", kOutsideReason));
    } else {
      model.config_path = absl::StrCat(name, "/", kConfigFile);
      absl::StatusOr<v1::ModelConfig> parsed =
          ParseModelConfig(config.string(), model.config_path);
      if (parsed.ok()) {
        model.config = *std::move(parsed);
      } else {
        // A file of the server's own, not the request: FAILED_PRECONDITION
        // (README, "Server file errors"). The message names the file once.
        model.config_error = absl::FailedPreconditionError(parsed.status().message());
      }
    }
  }
  std::vector<std::string> skipped_here;
  auto skip_here = [&](const std::string& entry_name, std::string reason) {
    skipped_here.push_back(absl::StrCat(name, "/", entry_name, " (", reason, ")"));
    skip(absl::StrCat(name, "/", entry_name), std::move(reason));
  };
  std::vector<fs::directory_entry> items;
  for (const auto& item : fs::directory_iterator(dir, ec)) items.push_back(item);
  std::sort(items.begin(), items.end());
  for (const fs::directory_entry& item : items) {
    std::string entry_name = item.path().filename().string();
    if (entry_name.empty() || entry_name[0] == '.' || entry_name == kConfigFile) continue;
    int64_t version = 0;
    std::error_code item_ec;
    const bool is_dir = item.is_directory(item_ec);
    if (!is_dir) {
      skip_here(entry_name, IsCheckpointFile(entry_name)
                                ? absl::StrCat("a checkpoint belongs in a version directory, e.g. ",
                                               name, "/1/", entry_name)
                                : "not a version directory");
      continue;
    }
    // "01" would alias "1"; only canonical decimal numbers are versions.
    if (!absl::SimpleAtoi(entry_name, &version) || version <= 0 ||
        absl::StrCat(version) != entry_name) {
      skip_here(entry_name,
                "version directories are positive integers without leading zeros (1, 2, ...)");
      continue;
    }
    if (!ctx.Allowed(item.path())) {
      skip_here(entry_name, kOutsideReason);
      continue;
    }
    model.versions.push_back(ScanVersionDir(item.path(), version, ctx));
  }
  std::sort(model.versions.begin(), model.versions.end(),
            [](const VersionEntry& a, const VersionEntry& b) { return a.version > b.version; });
  if (model.versions.empty()) {
    model.no_versions_reason = absl::StrCat(
        name, "/ has no version directory (", name, "/<N>/<checkpoint>, N = 1, 2, ...)",
        skipped_here.empty() ? "" : "; skipped ", absl::StrJoin(skipped_here, ", "));
    skip(name, model.no_versions_reason);
  }
  return model;
}

// Applies <config_dir>/<model>.pbtxt files to `models` (sorted by name).
absl::Status ApplyConfigDir(const std::string& config_dir, std::vector<ModelEntry>* models,
                            const std::function<void(std::string)>& warn) {
  std::error_code ec;
  if (!fs::is_directory(config_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model config dir ", config_dir, ": not a directory"));
  }
  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(config_dir, ec)) {
    const std::string name = item.path().filename().string();
    // A ConfigMap volume holds "..data" and "..<timestamp>" beside the keys.
    if (name.empty() || name[0] == '.' || !absl::EndsWith(name, ".pbtxt")) continue;
    files.push_back(item.path());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("model config dir ", config_dir, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    const std::string model_name = name.substr(0, name.size() - strlen(".pbtxt"));
    const std::string path = file.string();
    if (!ValidateModelName(model_name).ok()) {
      warn(absl::StrCat(path, ": skipped, \"", model_name, "\" is not a valid model name"));
      continue;
    }
    auto it = std::lower_bound(
        models->begin(), models->end(), model_name,
        [](const ModelEntry& m, const std::string& n) { return m.name < n; });
    if (it == models->end() || it->name != model_name) {
      warn(absl::StrCat(path, ": skipped, the repository has no model \"", model_name, "\""));
      continue;
    }
    // The whole file replaces the repository's model.pbtxt, errors included.
    it->config = v1::ModelConfig();
    it->config_error = absl::OkStatus();
    it->config_path = path;
    std::error_code file_ec;
    if (!fs::is_regular_file(file, file_ec)) {  // follows the ConfigMap's symlinks
      it->config_error =
          absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
      continue;
    }
    absl::StatusOr<v1::ModelConfig> parsed = ParseModelConfig(path);
    if (parsed.ok()) {
      it->config = *std::move(parsed);
    } else {
      // ParseModelConfig's message starts with the path.
      it->config_error = absl::FailedPreconditionError(parsed.status().message());
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateModelName(absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 255 && absl::ascii_isalnum(name[0]);
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-')) ok = false;
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid model name \"", absl::CHexEscape(name.substr(0, 300)),
        "\": use letters, digits, '.', '_' and '-', starting with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& path,
                                                 absl::string_view shown_path) {
  if (shown_path.empty()) shown_path = path;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(shown_path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  v1::ModelConfig config;
  if (!parser.ParseFromString(text.str(), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        shown_path, ": ", errors.errors().empty() ? "parse error" : absl::StrJoin(errors.errors(), "; ")));
  }
  return config;
}

absl::StatusOr<std::vector<ModelEntry>> ScanRepository(const std::string& root,
                                                       std::vector<std::string>* warnings,
                                                       const std::string& config_dir,
                                                       std::vector<SkippedEntry>* skipped) {
  RepositoryOptions options;
  options.root = root;
  options.config_dir = config_dir;
  return ScanRepository(options, warnings, skipped);
}

absl::StatusOr<std::vector<ModelEntry>> ScanRepository(const RepositoryOptions& options,
                                                       std::vector<std::string>* warnings,
                                                       std::vector<SkippedEntry>* skipped) {
  const std::string& root_in = options.root;
  const std::string& config_dir = options.config_dir;
  std::error_code ec;
  fs::path root_path = fs::canonical(root_in, ec);
  if (ec || !fs::is_directory(root_path, ec)) {
    return absl::NotFoundError(absl::StrCat("repository ", root_in, ": not a directory"));
  }
  std::string root = root_path.string();
  auto warn = [&](std::string message) {
    if (warnings != nullptr) warnings->push_back(std::move(message));
  };
  SkipFn skip = [&](std::string path, std::string reason) {
    warn(absl::StrCat(path, ": skipped, ", reason));
    if (skipped != nullptr) skipped->push_back({std::move(path), std::move(reason)});
  };
  const ScanContext ctx{root, options.follow_external_symlinks, skip};
  std::vector<ModelEntry> models;
  std::vector<fs::directory_entry> items;
  for (const auto& item : fs::directory_iterator(root_path, ec)) items.push_back(item);
  std::sort(items.begin(), items.end());
  for (const fs::directory_entry& item : items) {
    std::string entry_name = item.path().filename().string();
    if (entry_name.empty() || entry_name[0] == '.') continue;
    std::error_code item_ec;
    if (item.is_directory(item_ec) && internal_repository::IsHfCacheEntry(entry_name)) {
      internal_repository::ScanHfCacheEntry(item.path(), entry_name, ctx, &models);
      continue;
    }
    if (item.is_directory(item_ec)) {
      if (!ValidateModelName(entry_name).ok()) {
        skip(entry_name, "not a valid model name");
        continue;
      }
      if (!ctx.Allowed(item.path())) {
        skip(entry_name, kOutsideReason);
        continue;
      }
      models.push_back(ScanModelDir(item.path(), entry_name, ctx));
      continue;
    }
    // A bare file: <name>.pt, <name>.pth or <name>.safetensors is version 1.
    std::string stem;
    for (const char* ext : {".pt", ".pth", ".safetensors"}) {
      if (absl::EndsWith(entry_name, ext)) {
        stem = entry_name.substr(0, entry_name.size() - strlen(ext));
      }
    }
    if (stem.empty()) {
      skip(entry_name, "neither a model directory nor a .pt, .pth or .safetensors file");
      continue;
    }
    if (!ValidateModelName(stem).ok()) {
      skip(entry_name, "not a valid model name");
      continue;
    }
    ModelEntry model;
    model.name = stem;
    model.source = entry_name;
    VersionEntry version;
    version.version = 1;
    version.path = (root_path / entry_name).string();
    version.relative_path = entry_name;
    if (!ctx.Allowed(item.path())) {
      version.error =
          absl::FailedPreconditionError(absl::StrCat(entry_name, ": ", kOutsideReason));
    }
    FillIdentity(version.path, &version);
    model.versions.push_back(std::move(version));
    models.push_back(std::move(model));
  }
  if (ec) return absl::NotFoundError(absl::StrCat("repository ", root_in, ": ", ec.message()));
  // Entries serving the same name: a model directory wins over a hub cache
  // entry ("org--m" over "models--org--m"), which wins over a bare file.
  auto rank = [](const ModelEntry& m) {
    if (m.source == m.name) return 0;
    return internal_repository::IsHfCacheEntry(m.source) ? 1 : 2;
  };
  std::sort(models.begin(), models.end(), [&](const ModelEntry& a, const ModelEntry& b) {
    return std::make_pair(a.name, rank(a)) < std::make_pair(b.name, rank(b));
  });
  for (size_t i = 1; i < models.size();) {
    if (models[i].name == models[i - 1].name) {
      warn(absl::StrCat(models[i].name, ": both ", models[i - 1].source, " and ",
                        models[i].source, " serve this model; using ", models[i - 1].source));
      models.erase(models.begin() + i);
    } else {
      ++i;
    }
  }
  if (!config_dir.empty()) {
    absl::Status applied = ApplyConfigDir(config_dir, &models, warn);
    if (!applied.ok()) return applied;
  }
  return models;
}

}  // namespace weightd
