#include "client/weightctl/args.h"

#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace weightd::cli {

bool ParsedArgs::Has(absl::string_view name) const {
  for (const auto& [flag, value] : flags) {
    if (flag == name) return true;
  }
  return false;
}

std::optional<std::string> ParsedArgs::Get(absl::string_view name) const {
  std::optional<std::string> out;
  for (const auto& [flag, value] : flags) {
    if (flag == name) out = value;
  }
  return out;
}

std::vector<std::string> ParsedArgs::GetAll(absl::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [flag, value] : flags) {
    if (flag == name) out.push_back(value);
  }
  return out;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs) {
  ParsedArgs out;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (!flags_done && arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
      for (const FlagSpec& s : specs) {
        if (s.short_name == arg[1]) arg = "--" + s.name;
      }
    }
    if (flags_done || !absl::StartsWith(arg, "--") || arg.size() == 2) {
      if (arg == "--" && !flags_done) {
        flags_done = true;
      } else {
        out.positional.push_back(arg);
      }
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (spec->takes_value && !value.has_value()) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = args[++i];
    }
    if (!spec->takes_value && value.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
    }
    out.flags.emplace_back(name, value.value_or(""));
  }
  return out;
}

bool IsGlobalFlag(absl::string_view name) {
  for (const char* global : {"server", "json", "quiet", "tls_ca", "tls_cert", "tls_key", "token"}) {
    if (name == global) return true;
  }
  return false;
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f B", bytes) : absl::StrFormat("%.1f %s", bytes, units[u]);
}

int Fail(absl::string_view message, int code) {
  // One line, so scripts can rely on "the last line of stderr is the reason".
  std::cerr << "weightctl: " << absl::StrReplaceAll(message, {{"\n", " "}}) << std::endl;
  return code;
}

}  // namespace weightd::cli
