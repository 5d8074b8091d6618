#include "server/metrics/http_exporter.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/address.h"
#include "server/bind_probe.h"

namespace weightd {

absl::StatusOr<std::unique_ptr<HttpExporter>> HttpExporter::Start(const std::string& listen,
                                                                  MetricsRegistry* registry) {
  absl::StatusOr<HostPort> address = ParseHostPort(listen);
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_listen ", address.status().message()));
  }
  // httplib takes the bare address: "[::]:9090" -> "::".
  const std::string host = address->host;
  const int port = address->port;
  std::unique_ptr<HttpExporter> exporter(new HttpExporter());
  exporter->server_ = std::make_unique<httplib::Server>();
  // httplib's default options set SO_REUSEPORT, so a second weightd would
  // bind the same metrics port and answer half the scrapes. SO_REUSEADDR
  // alone still rebinds a port in TIME_WAIT after a restart.
  exporter->server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<void*>(&yes), sizeof(yes));
  });
  exporter->server_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  exporter->server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("weightd metrics: /metrics\n", "text/plain");
  });
  if (port == 0) {
    exporter->port_ = exporter->server_->bind_to_any_port(host);
  } else if (exporter->server_->bind_to_port(host, port)) {
    exporter->port_ = port;
  } else {
    exporter->port_ = -1;
  }
  if (exporter->port_ <= 0) {
    return absl::UnavailableError(CannotListenMessage(listen, "--metrics_listen"));
  }
  httplib::Server* server = exporter->server_.get();
  auto ended = std::make_shared<std::atomic<bool>>(false);
  exporter->thread_ = std::thread([server, ended] {
    server->listen_after_bind();
    *ended = true;
  });
  // httplib's stop() is a no-op until the loop runs; wait for it so an early
  // Stop cannot leave the thread listening forever.
  while (!server->is_running() && !*ended)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return exporter;
}

HttpExporter::~HttpExporter() { Stop(); }

void HttpExporter::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace weightd
