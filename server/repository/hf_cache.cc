#include "server/repository/hf_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace weightd::internal_repository {
namespace {

namespace fs = std::filesystem;

constexpr char kModelPrefix[] = "models--";
// Preferred first: safetensors reads without unpickling.
constexpr const char* kCheckpointNames[] = {"model.safetensors.index.json", "model.safetensors",
                                            "pytorch_model.bin"};
constexpr char kNoCheckpoint[] =
    "no checkpoint (model.safetensors.index.json, model.safetensors or pytorch_model.bin)";

struct Snapshot {
  std::string rev;
  fs::path dir;
  int64_t mtime_ns = 0;
  std::string checkpoint;  // a kCheckpointNames entry; empty: none
};

int64_t MtimeNs(const fs::path& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string FindCheckpoint(const fs::path& dir) {
  for (const char* name : kCheckpointNames) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(dir / name, ec))) return name;
  }
  return "";
}

// The snapshot's version: its checkpoint, refused when it (or, for a
// sharded index, any *.safetensors beside it) leaves the repository.
VersionEntry SnapshotVersion(const Snapshot& snapshot, int64_t version,
                             const std::string& entry_rel, const ScanContext& ctx) {
  VersionEntry entry;
  entry.version = version;
  const fs::path file = snapshot.dir / snapshot.checkpoint;
  entry.path = file.string();
  entry.relative_path =
      absl::StrCat(entry_rel, "/snapshots/", snapshot.rev, "/", snapshot.checkpoint);
  std::vector<fs::path> read = {file};
  if (absl::EndsWith(snapshot.checkpoint, ".index.json")) {
    std::error_code ec;
    for (const auto& item : fs::directory_iterator(snapshot.dir, ec)) {
      if (absl::EndsWith(item.path().filename().string(), ".safetensors")) {
        read.push_back(item.path());
      }
    }
  }
  for (const fs::path& path : read) {
    if (!ctx.Allowed(path)) {
      entry.error = absl::FailedPreconditionError(
          absl::StrCat(entry_rel, "/snapshots/", snapshot.rev, "/", path.filename().string(), ": ",
                       kOutsideReason));
      return entry;
    }
  }
  FillIdentity(entry.path, &entry);
  return entry;
}

}  // namespace

bool IsHfCacheEntry(absl::string_view name) {
  return absl::StartsWith(name, kModelPrefix) || absl::StartsWith(name, "datasets--") ||
         absl::StartsWith(name, "spaces--");
}

void ScanHfCacheEntry(const fs::path& dir, const std::string& name, const ScanContext& ctx,
                      std::vector<ModelEntry>* models) {
  if (!absl::StartsWith(name, kModelPrefix)) {
    ctx.skip(name, "a Hugging Face dataset or space, not a model");
    return;
  }
  ModelEntry model;
  model.name = name.substr(strlen(kModelPrefix));
  model.source = name;
  if (!ValidateModelName(model.name).ok()) {
    ctx.skip(name, absl::StrCat("\"", model.name, "\" is not a valid model name"));
    return;
  }
  if (!ctx.Allowed(dir)) {
    ctx.skip(name, kOutsideReason);
    return;
  }
  auto no_versions = [&](std::string reason) {
    model.no_versions_reason = absl::StrCat(name, "/: ", reason);
    ctx.skip(name, model.no_versions_reason);
    models->push_back(std::move(model));
  };

  std::string main_rev;
  {
    std::ifstream in(dir / "refs" / "main");
    std::stringstream text;
    if (in) text << in.rdbuf();
    main_rev = std::string(absl::StripAsciiWhitespace(text.str()));
  }
  if (main_rev.empty()) return no_versions("no refs/main (the commit main points at)");

  std::vector<Snapshot> snapshots;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir / "snapshots", ec)) {
    Snapshot snapshot;
    snapshot.rev = item.path().filename().string();
    std::error_code item_ec;
    if (snapshot.rev.empty() || snapshot.rev[0] == '.' || !item.is_directory(item_ec)) continue;
    snapshot.dir = item.path();
    snapshot.mtime_ns = MtimeNs(item.path());
    snapshot.checkpoint = FindCheckpoint(item.path());
    if (snapshot.checkpoint.empty()) {
      ctx.skip(absl::StrCat(name, "/snapshots/", snapshot.rev), kNoCheckpoint);
      if (snapshot.rev == main_rev) {
        return no_versions(
            absl::StrCat("the snapshot refs/main names, ", main_rev, ", has ", kNoCheckpoint));
      }
      continue;
    }
    snapshots.push_back(std::move(snapshot));
  }
  // Oldest first; the name breaks ties so the numbering is stable.
  std::sort(snapshots.begin(), snapshots.end(), [](const Snapshot& a, const Snapshot& b) {
    return std::tie(a.mtime_ns, a.rev) < std::tie(b.mtime_ns, b.rev);
  });
  auto main_it = std::find_if(snapshots.begin(), snapshots.end(),
                              [&](const Snapshot& s) { return s.rev == main_rev; });
  if (main_it == snapshots.end()) {
    return no_versions(
        absl::StrCat("refs/main names snapshot ", main_rev, ", which snapshots/ lacks"));
  }
  std::rotate(main_it, main_it + 1, snapshots.end());  // refs/main's is the newest
  for (size_t i = snapshots.size(); i > 0; --i) {      // newest first
    model.versions.push_back(SnapshotVersion(snapshots[i - 1], static_cast<int64_t>(i), name, ctx));
  }
  models->push_back(std::move(model));
}

}  // namespace weightd::internal_repository
