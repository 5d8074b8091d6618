// Helpers shared by the safetensors tests: temp dirs, file bytes, Python.
#ifndef WEIGHTD_TESTS_CORE_FORMAT_SAFETENSORS_TEST_UTIL_H_
#define WEIGHTD_TESTS_CORE_FORMAT_SAFETENSORS_TEST_UTIL_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weightd {
namespace safetensors_test {

inline std::string Python() {
  const char* env = std::getenv("WEIGHTD_PYTHON");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/python3";
}

// Files make_safetensors_cases.py wrote at build time (read-only for tests).
inline std::string CasesDir() { return WEIGHTD_SAFETENSORS_CASES; }

inline std::string CasesScript() {
  return std::string(WEIGHTD_SOURCE_DIR) + "/tests/data/make_safetensors_cases.py";
}

// This process's scratch directory, removed when the tests end.
inline std::string TempRoot() {
  return ::testing::TempDir() + "/safetensors_test_" + std::to_string(::getpid());
}

class RemoveTempRoot : public ::testing::Environment {
 public:
  void TearDown() override { std::system(("rm -rf '" + TempRoot() + "'").c_str()); }
};
inline ::testing::Environment* const kRemoveTempRoot =
    ::testing::AddGlobalTestEnvironment(new RemoveTempRoot);

// A fresh directory under TempRoot().
inline std::string MakeTempDir(const std::string& name) {
  std::string dir = TempRoot() + "/" + name;
  std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str());
  return dir;
}

// Runs a command; returns its exit status and appends its output to `*output`.
inline int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char chunk[4096];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), pipe)) > 0) output->append(chunk, n);
  return ::pclose(pipe);
}

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

inline nlohmann::ordered_json ReadJson(const std::string& path) {
  return nlohmann::ordered_json::parse(ReadFileBytes(path));
}

}  // namespace safetensors_test
}  // namespace weightd

#endif  // WEIGHTD_TESTS_CORE_FORMAT_SAFETENSORS_TEST_UTIL_H_
