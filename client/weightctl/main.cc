// weightctl: inspect, convert and match checkpoints (local files).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/weightctl/args.h"
#include "client/weightctl/commands.h"

namespace weightd::cli {
namespace {

std::vector<Command> AllCommands() {
  return {InspectCommand(), ConvertCommand(), MatchCommand(),
#ifdef WEIGHTD_WEIGHTCTL_REMOTE
          ListCommand(),    ManifestCommand(), PullCommand(),
#endif
  };
}

void PrintUsage(std::ostream& out) {
  out << "usage: weightctl [GLOBAL FLAGS] COMMAND [ARGS...]\n\ncommands:\n";
  for (const Command& c : AllCommands()) out << "  " << c.usage << "\n      " << c.summary << "\n";
#ifdef WEIGHTD_WEIGHTCTL_REMOTE
  out << "\ncredentials (commands against a server): --tls_ca PEM (TLS), --tls_cert PEM "
         "--tls_key PEM (mTLS), --token TOKEN (default: $WEIGHTD_TOKEN)\n";
#endif
  out << "\nglobal flags (before or after the command): --server HOST:PORT (default: "
         "$WEIGHTD_TARGET, else localhost:50051), --json, --quiet, and the credentials\n";
  out << "\nexit codes: 0 success, 1 the command failed (reason on stderr), 2 bad usage\n"
         "run 'weightctl COMMAND --help' for the flags of a command\n";
}

void PrintCommandHelp(const Command& c) {
  std::cout << "usage: weightctl " << c.usage << "\n" << c.summary << "\n";
  if (!c.details.empty()) std::cout << "\n" << c.details;
  if (!c.flags.empty()) std::cout << "\nflags:\n";
  for (const FlagSpec& f : c.flags) {
    std::cout << "  --" << f.name << (f.takes_value ? " " : "  ") << f.help << "\n";
  }
}

int Main(int argc, char** argv) {
  // Global flags may come before the command; they move behind it, where the
  // command's own parser takes them ("weightctl --server H:P list").
  std::vector<std::string> leading;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--") || arg == "--" || arg == "--help") break;
    std::string flag = arg.substr(2);
    const bool has_value = flag.find('=') != std::string::npos;
    if (has_value) flag.resize(flag.find('='));
    if (!IsGlobalFlag(flag)) {
      return Fail(absl::StrCat("--", flag, " goes after the command name (weightctl COMMAND --",
                               flag, " ...; see weightctl --help)"),
                  2);
    }
    leading.push_back(arg);
    if (flag != "json" && flag != "quiet" && !has_value) {
      if (i + 1 >= argc) return Fail(absl::StrCat("flag --", flag, " needs a value"), 2);
      leading.push_back(argv[++i]);
    }
  }
  if (i >= argc) {
    PrintUsage(std::cerr);
    return 2;
  }
  std::string name = argv[i];
  if (name == "-h" || name == "--help" || name == "help") {
    PrintUsage(std::cout);
    return 0;
  }
  for (const Command& c : AllCommands()) {
    if (c.name != name) continue;
    std::vector<std::string> args = leading;
    args.insert(args.end(), argv + i + 1, argv + argc);
    for (const std::string& a : args) {
      if (a == "-h" || a == "--help") {
        PrintCommandHelp(c);
        return 0;
      }
    }
    absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, c.flags);
    if (!parsed.ok()) return Fail(absl::StrCat(parsed.status().message(), " (see weightctl ", name, " --help)"), 2);
    size_t n = parsed->positional.size();
    if (n < c.min_positional || n > c.max_positional) {
      return Fail(absl::StrCat("usage: weightctl ", c.usage), 2);
    }
    return c.run(*parsed);
  }
  return Fail(absl::StrCat("unknown command \"", name, "\" (see weightctl --help)"), 2);
}

}  // namespace
}  // namespace weightd::cli

int main(int argc, char** argv) { return weightd::cli::Main(argc, argv); }
