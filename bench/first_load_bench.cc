// first_load_bench: the server's lazy first load of one checkpoint without
// gRPC: Snapshot::Load (zip directory, data.pkl, the value tree, the default
// state-dict view) and PlanFetch of every tensor, as a fresh daemon does for
// its first Fetch. Per-tensor cost is what issue 15's cold start needs flat:
//
//   first_load_bench --file model.pt [--repeat 5]
//
// Prints "RESULT first_load_us_per_tensor US" (best of --repeat runs) and
// the tensor count. Cheap enough to run under callgrind (--repeat 1).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/flags.h"
#include "server/cache/fetch_plan.h"
#include "server/cache/snapshot.h"

int main(int argc, char** argv) {
  using weightd::bench::Flag;
  const std::string file = Flag(argc, argv, "file", "");
  const int repeat = std::stoi(Flag(argc, argv, "repeat", "5"));
  if (file.empty()) {
    std::cerr << "usage: first_load_bench --file model.pt [--repeat N]\n";
    return 2;
  }
  double best = 1e300;
  size_t tensors = 0;
  for (int i = 0; i < repeat; ++i) {
    const absl::Time start = absl::Now();
    absl::StatusOr<std::shared_ptr<const weightd::Snapshot>> snapshot =
        weightd::Snapshot::Load("bench", 1, file, "");
    if (!snapshot.ok()) {
      std::cerr << snapshot.status() << "\n";
      return 1;
    }
    absl::StatusOr<weightd::FetchPlan> plan =
        weightd::PlanFetch(*(*snapshot)->default_view(), weightd::FetchSpec());
    if (!plan.ok()) {
      std::cerr << plan.status() << "\n";
      return 1;
    }
    best = std::min(best, absl::ToDoubleSeconds(absl::Now() - start));
    tensors = plan->tensors.size();
  }
  std::printf("tensors %zu\nRESULT first_load_s %.6f\nRESULT first_load_us_per_tensor %.3f\n",
              tensors, best, tensors == 0 ? 0.0 : best * 1e6 / tensors);
  return 0;
}
