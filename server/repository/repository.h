// The model repository on disk (DESIGN.md section 5):
//
//   <repo>/<model>/<version>/<checkpoint>    version = positive integer
//   <repo>/<model>/model.pbtxt               optional weightd.v1.ModelConfig
//   <repo>/<name>.{pt,pth,safetensors}       a bare file: model <name>, version 1
//   <repo>/models--ORG--NAME/...             a Hugging Face hub cache entry:
//                                            model ORG--NAME (hf_cache.h)
//
// Symlinks are followed while they resolve inside the repository; one that
// leaves it is refused ("resolves outside the repository") unless
// follow_external_symlinks is set.
//
// A version directory holds exactly one checkpoint: one *.pt, *.pth, *.bin or
// *.safetensors file, or one *.safetensors.index.json (the shards beside it).
// Scanning reads directory entries and model.pbtxt only, never a checkpoint.
// No gRPC here.
//
// Per-model configs may also live outside the repository, in a config
// directory (--model_config_dir; in Kubernetes a ConfigMap, since the model
// volume is read-only): <config_dir>/<model>.pbtxt. Such a file replaces the
// model's <repo>/<model>/model.pbtxt as a whole (no field merging), also for
// a bare-file model. Files for models the repository lacks are ignored with
// a warning, as are hidden entries (a ConfigMap volume's "..data") and
// names not ending in ".pbtxt".
#ifndef WEIGHTD_SERVER_REPOSITORY_REPOSITORY_H_
#define WEIGHTD_SERVER_REPOSITORY_REPOSITORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "weightd/v1/config.pb.h"

namespace weightd {

// One version of a model as found on disk.
struct VersionEntry {
  int64_t version = 0;
  std::string path;           // absolute path of the checkpoint file
  std::string relative_path;  // relative to the repository root
  // Identity of the file, so a rescan notices a replaced file.
  int64_t file_size = 0;
  int64_t mtime_ns = 0;
  // Non-OK when the directory cannot be served as it is (no checkpoint, two
  // checkpoints, a path outside the repository); the message names the path.
  absl::Status error;
};

// A repository entry that is not served, and why; ListModels shows these.
struct SkippedEntry {
  std::string path;    // relative to the repository (or a config-dir file)
  std::string reason;  // "version directories are positive integers (1, 2, ...)"
};

struct ModelEntry {
  std::string name;
  // The repository root entry the model comes from: "m" (a directory),
  // "m.pt" (a bare file), "models--org--m" (a hub cache entry).
  std::string source;
  // Why `versions` is empty ("no version directory ..."); empty otherwise.
  std::string no_versions_reason;
  v1::ModelConfig config;
  // The file `config` came from: "<model>/model.pbtxt" (relative to the
  // repository) or "<config_dir>/<model>.pbtxt"; empty: defaults.
  std::string config_path;
  // FailedPrecondition when the config file does not parse; every version
  // then fails with it (the message names the file once).
  absl::Status config_error;
  std::vector<VersionEntry> versions;  // newest first
};

// Model names: [A-Za-z0-9][A-Za-z0-9._-]*, at most 255 characters. This also
// keeps "..", "/" and hidden entries out. InvalidArgument otherwise.
absl::Status ValidateModelName(absl::string_view name);

// Parses a model.pbtxt. InvalidArgument names the file (as `shown_path`,
// default `path`), line and column.
absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& path,
                                                 absl::string_view shown_path = "");

struct RepositoryOptions {
  std::string root;
  std::string config_dir;  // see above; empty: none
  // Serve files through symlinks that leave `root`. Whoever can write the
  // repository can then make the daemon read any file it can read.
  bool follow_external_symlinks = false;
};

// Scans options.root, and options.config_dir when not empty (see above). NotFound /
// InvalidArgument when the root or the config directory is not a readable
// directory; problems with single models, versions or config files are
// recorded in their entries, so one bad model never hides the others.
// Entries that are not served (invalid names, version directories that are
// not positive integers, checkpoint files outside a version directory,
// other files) are skipped: each goes to `skipped` and, as
// "PATH: skipped, REASON", to `warnings` (either may be null). A model
// directory without versions stays a model with no_versions_reason set, and
// is in `skipped` too. Models are sorted by name.
absl::StatusOr<std::vector<ModelEntry>> ScanRepository(const std::string& root,
                                                       std::vector<std::string>* warnings,
                                                       const std::string& config_dir = "",
                                                       std::vector<SkippedEntry>* skipped = nullptr);
absl::StatusOr<std::vector<ModelEntry>> ScanRepository(const RepositoryOptions& options,
                                                       std::vector<std::string>* warnings,
                                                       std::vector<SkippedEntry>* skipped);

}  // namespace weightd

#endif  // WEIGHTD_SERVER_REPOSITORY_REPOSITORY_H_
