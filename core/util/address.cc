#include "core/util/address.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace weightd {
namespace {

absl::Status Bad(absl::string_view address, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" is not HOST:PORT: ", why));
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address) {
  HostPort out;
  absl::string_view port;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) return Bad(address, "no ']' after an IPv6 address");
    out.host = std::string(address.substr(1, close - 1));
    absl::string_view rest = address.substr(close + 1);
    if (!absl::StartsWith(rest, ":")) return Bad(address, "missing port after ']'");
    port = rest.substr(1);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return Bad(address, "missing port");
    out.host = std::string(address.substr(0, colon));
    if (out.host.find(':') != std::string::npos) {
      return Bad(address, "write an IPv6 address in brackets, as [::1]:PORT");
    }
    port = address.substr(colon + 1);
  }
  if (out.host.empty()) return Bad(address, "missing host");
  if (port.empty()) return Bad(address, "missing port");
  for (char c : port) {
    if (!absl::ascii_isdigit(c)) return Bad(address, absl::StrCat("port \"", port, "\" is not a number"));
  }
  uint64_t value = 0;
  if (port.size() > 5 || !absl::SimpleAtoi(port, &value) || value > 65535) {
    return Bad(address, absl::StrCat("port ", port, " is out of range 0-65535"));
  }
  out.port = static_cast<int>(value);
  return out;
}

absl::Status CheckListenAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:")) {
    if (address.size() == 5) {
      return absl::InvalidArgumentError(absl::StrCat("\"", address, "\": unix: needs a path"));
    }
    return absl::OkStatus();
  }
  return ParseHostPort(address).status();
}

absl::Status CheckTarget(absl::string_view target) {
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) {
    return absl::OkStatus();
  }
  if (absl::StartsWith(target, "dns:")) {
    // dns:[//AUTHORITY/]HOST:PORT
    absl::string_view rest = target.substr(4);
    if (absl::StartsWith(rest, "//")) {
      const size_t slash = rest.find('/', 2);
      if (slash == absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", target, "\" is not dns:///HOST:PORT: missing '/' before HOST"));
      }
      rest = rest.substr(slash + 1);
    }
    absl::Status status = ParseHostPort(rest).status();
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("\"", target, "\": ", status.message()));
    }
    return absl::OkStatus();
  }
  for (absl::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (!absl::StartsWith(target, scheme)) continue;
    for (absl::string_view one : absl::StrSplit(target.substr(scheme.size()), ',')) {
      absl::Status status = ParseHostPort(one).status();
      if (!status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("\"", target, "\": ", status.message()));
      }
    }
    return absl::OkStatus();
  }
  return ParseHostPort(target).status();
}

}  // namespace weightd
