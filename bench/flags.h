// The benches' one flag syntax, "--name value" (no flag library: each bench
// is a small program run by bench/*.sh).
#ifndef WEIGHTD_BENCH_FLAGS_H_
#define WEIGHTD_BENCH_FLAGS_H_

#include <string>

namespace weightd::bench {

// The value after "--name", else `def`.
inline std::string Flag(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return def;
}

}  // namespace weightd::bench

#endif  // WEIGHTD_BENCH_FLAGS_H_
