// Command-line parsing for weightctl's subcommands. Flags keep the order in
// which they were given, because rules (--strip-prefix, --rename...) apply in
// command-line order across different flags.
#ifndef WEIGHTD_CLIENT_WEIGHTCTL_ARGS_H_
#define WEIGHTD_CLIENT_WEIGHTCTL_ARGS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weightd::cli {

struct FlagSpec {
  std::string name;  // without dashes: "select"
  bool takes_value = false;
  std::string help;  // "PATH  select a state dict inside the checkpoint"
  // A one-letter alias, given as "-o VALUE"; 0: none.
  char short_name = 0;
};

struct ParsedArgs {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> flags;  // in command-line order

  bool Has(absl::string_view name) const;
  // The last value given for `name`.
  std::optional<std::string> Get(absl::string_view name) const;
  std::vector<std::string> GetAll(absl::string_view name) const;
};

// Parses `args` ("--name value", "--name=value", "-o value" for a flag with
// a short name, "--" ends flags), in any order with the positionals. Unknown
// flags and missing values are InvalidArgument.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs);

// A subcommand: `run` returns the process exit code (0 ok, 1 failure the
// command reports, 2 bad usage).
struct Command {
  std::string name;
  std::string usage;    // "inspect FILE [--select PATH] [--json]"
  std::string summary;  // one line
  std::string details;  // more lines for 'weightctl COMMAND --help' (optional)
  std::vector<FlagSpec> flags;
  size_t min_positional = 0;
  size_t max_positional = 0;
  int (*run)(const ParsedArgs& args) = nullptr;
};

// The flags that may also come before the command name ("weightctl
// --server H:P list"): --server, --json, --quiet and the credential flags.
bool IsGlobalFlag(absl::string_view name);

// "512 B", "1.5 MiB": sizes for people (tables, progress bars).
std::string HumanBytes(double bytes);

// Prints "weightctl: <message>" as one line on stderr and returns `code`.
int Fail(absl::string_view message, int code = 1);

}  // namespace weightd::cli

#endif  // WEIGHTD_CLIENT_WEIGHTCTL_ARGS_H_
