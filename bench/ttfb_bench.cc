// ttfb_bench: time to the first tensor byte of one call against a weightd
// that has not served the model yet (bench/run.sh starts a fresh daemon for
// each call). LibTorch-free: it measures the server, not a module.
//
//   ttfb_bench --target 127.0.0.1:PORT --model big --what fetch
//
// --what fetch          Fetch of every tensor: seconds until the first byte
//                       of the first tensor reaches the receiver (checksum
//                       trailers on, as every weightd client asks)
//        fetch_include  the same through include/exclude rules, so the
//                       client first asks the manifest for names
//        manifest_known GetManifest with CHECKSUMS_KNOWN: seconds to answer
//        manifest_all   GetManifest with CHECKSUMS_ALL (the old default:
//                       hashes the whole model first)
// The channel is connected first (ListModels, which loads no model), so the
// figure is the server's, not the TCP handshake's. Prints
// "RESULT ttfb_<what>_s SECONDS".
#include <weightd/client_core.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "bench/flags.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace {

using weightd::bench::Flag;

// Stops the stream at its first byte, noting when that came.
class FirstByte : public weightd::TensorReceiver {
 public:
  absl::Status Plan(std::vector<weightd::TensorDescriptor>) override { return absl::OkStatus(); }
  absl::Status Begin(size_t) override { return absl::OkStatus(); }
  absl::Status Write(absl::string_view) override {
    at = absl::Now();
    return absl::CancelledError("first byte arrived");
  }
  absl::Status End() override { return absl::OkStatus(); }
  absl::Time at = absl::InfinitePast();
};

}  // namespace

int main(int argc, char** argv) {
  const std::string target = Flag(argc, argv, "target", "127.0.0.1:50051");
  const std::string model = Flag(argc, argv, "model", "big");
  const std::string what = Flag(argc, argv, "what", "fetch");
  weightd::ClientCore client(weightd::ClientOptions{.target = target});
  if (absl::StatusOr<std::vector<weightd::ModelInfo>> models = client.ListModels(); !models.ok()) {
    std::cerr << "ListModels: " << models.status() << "\n";
    return 1;
  }
  const absl::Time start = absl::Now();
  absl::Time done;
  if (what == "fetch" || what == "fetch_include") {
    weightd::FetchSpec spec;
    if (what == "fetch_include") spec.rules.include = {"."};
    FirstByte receiver;
    absl::Status status = client.FetchTo(model, spec, &receiver);
    if (receiver.at == absl::InfinitePast()) {
      std::cerr << "Fetch: no byte arrived: " << status << "\n";
      return 1;
    }
    done = receiver.at;
  } else if (what == "manifest_known" || what == "manifest_all") {
    absl::StatusOr<weightd::Manifest> manifest =
        client.GetManifest(model, 0, "",
                           what == "manifest_all" ? weightd::ManifestChecksums::kAll
                                                  : weightd::ManifestChecksums::kKnown);
    if (!manifest.ok()) {
      std::cerr << "GetManifest: " << manifest.status() << "\n";
      return 1;
    }
    done = absl::Now();
  } else {
    std::cerr << "--what: fetch, fetch_include, manifest_known or manifest_all\n";
    return 2;
  }
  std::printf("RESULT ttfb_%s_s %.6f\n", what.c_str(), absl::ToDoubleSeconds(done - start));
  return 0;
}
