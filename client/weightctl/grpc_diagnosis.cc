#include "client/weightctl/grpc_diagnosis.h"

#include <grpc/support/log.h>

#include <cstdlib>
#include <deque>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace weightd::cli {
namespace {

// gRPC logs from its own threads.
std::mutex g_mu;
std::deque<std::string>* g_lines = nullptr;  // guarded by g_mu
constexpr size_t kMaxLines = 200;

void KeepLine(gpr_log_func_args* args) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_lines == nullptr) return;
  g_lines->emplace_back(args->message);
  if (g_lines->size() > kMaxLines) g_lines->pop_front();
}

bool Logged(absl::string_view what) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_lines == nullptr) return false;
  for (const std::string& line : *g_lines) {
    if (absl::StrContains(line, what)) return true;
  }
  return false;
}

// Every connection attempt that failed was refused.
bool OnlyRefused() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_lines == nullptr) return false;
  int refused = 0;
  for (const std::string& line : *g_lines) {
    if (!absl::StrContains(line, "connect failed (")) continue;
    if (absl::StrContains(line, "Connection refused")) {
      ++refused;
    } else if (!absl::StrContains(line, "tcp handshaker shutdown")) {
      // "shutdown" is an attempt cut short by the call's end, no cause.
      return false;
    }
  }
  return refused > 0;
}

}  // namespace

void CaptureGrpcLog() {
  if (std::getenv("GRPC_VERBOSITY") != nullptr || std::getenv("GRPC_TRACE") != nullptr) return;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_lines == nullptr) g_lines = new std::deque<std::string>();
  }
  gpr_set_log_function(KeepLine);
  gpr_set_log_verbosity(GPR_LOG_SEVERITY_INFO);
}

std::string DescribeUnavailable(const absl::Status& status, const ClientOptions& options) {
  const std::string& server = options.target;
  const bool tls = !options.tls_ca.empty() || !options.tls_cert.empty();
  std::string what;
  if (absl::StrContains(status.message(), "DNS resolution failed") ||
      absl::StrContains(status.message(), "name resolution")) {
    what = absl::StrCat("cannot resolve the host name of ", server,
                        " (a typo, or a name only another network knows?)");
  } else if (Logged("Could not load any root certificate")) {
    what = absl::StrCat("--tls_ca ", options.tls_ca,
                        ": no certificate in it could be loaded (a damaged PEM file?)");
  } else if (Logged("Invalid private key")) {
    what = absl::StrCat("--tls_key ", options.tls_key,
                        ": not a private key gRPC can use (is it the key of --tls_cert?)");
  } else if (tls && Logged("wrong version number")) {
    what = absl::StrCat("the server ", server,
                        " speaks plaintext, not TLS: leave out --tls_ca, --tls_cert and "
                        "--tls_key");
  } else if (tls && Logged("certificate verify failed")) {
    what = absl::StrCat("the certificate of ", server, " does not verify against --tls_ca ",
                        options.tls_ca,
                        " (signed by another CA, or not naming the host in --server?)");
  } else if (absl::StrContains(status.message(), "timed out")) {
    what = absl::StrCat("the server ", server, " accepted the connection but did not answer within ",
                        absl::FormatDuration(options.connect_timeout),
                        " (an overloaded host, or not a gRPC server on that port?)");
  } else if (OnlyRefused()) {
    what = absl::StrCat("nothing listens on ", server,
                        " (connection refused): is weightd running there, on that port?");
  } else if (!tls) {
    what = absl::StrCat("the server ", server,
                        " closed the connection; if it speaks TLS, pass --tls_ca PEM (the CA "
                        "that signed its certificate)");
  } else if (options.tls_cert.empty()) {
    what = absl::StrCat("the server ", server,
                        " closed the connection during the TLS handshake; if it asks for client "
                        "certificates (mTLS), pass --tls_cert and --tls_key");
  } else {
    what = absl::StrCat("the server ", server, " closed the connection during the TLS handshake",
                        " (does it accept the CA of --tls_cert?)");
  }
  return absl::StrCat(what, " [", status.message(), "]");
}

}  // namespace weightd::cli
