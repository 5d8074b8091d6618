// Serves a MetricsRegistry at GET /metrics (Prometheus text format) with
// cpp-httplib. No gRPC here.
#ifndef WEIGHTD_SERVER_METRICS_HTTP_EXPORTER_H_
#define WEIGHTD_SERVER_METRICS_HTTP_EXPORTER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/metrics/registry.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace weightd {

// Thread-safe. `registry` must outlive the exporter. Stop (or destruction)
// ends serving and joins the listener thread.
class HttpExporter {
 public:
  // `listen`: HOST:PORT, port 0 picks a free port. Unavailable when it cannot
  // bind, InvalidArgument for a malformed address.
  static absl::StatusOr<std::unique_ptr<HttpExporter>> Start(const std::string& listen,
                                                             MetricsRegistry* registry);
  ~HttpExporter();

  int port() const { return port_; }
  void Stop();

 private:
  HttpExporter() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace weightd

#endif  // WEIGHTD_SERVER_METRICS_HTTP_EXPORTER_H_
