// Runs Python (with real PyTorch) from tests to produce pickles.
#ifndef WEIGHTD_TESTS_CORE_FORMAT_PICKLE_PYTHON_UTIL_H_
#define WEIGHTD_TESTS_CORE_FORMAT_PICKLE_PYTHON_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/format/pickle/unpickler.h"

namespace weightd {
namespace testing_util {

// The Python with torch: $WEIGHTD_PYTHON, else /usr/bin/python3.
std::string PythonBinary();

// Runs `script` with `args` appended to the command line; returns its stdout
// or an error with its exit status and output.
absl::StatusOr<std::string> RunPython(const std::string& script,
                                      const std::vector<std::string>& args = {});

// Runs `body` after a prelude that defines:
//   save(obj): torch.save(obj) and keep the zip's data.pkl
//   raw(b):    keep the bytes `b` (e.g. pickle.dumps(obj, protocol=4))
// and returns the kept bytes.
absl::StatusOr<std::string> PickleFromPython(const std::string& body);

std::string TempPath(const std::string& name);
std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& bytes);

// A StorageLoader that records every request and returns zero-filled
// storages of the requested size.
struct RecordingLoader {
  std::vector<StorageRequest> requests;
  StorageLoader loader();
};

absl::Span<const uint8_t> Bytes(const std::string& s);

}  // namespace testing_util
}  // namespace weightd

#endif  // WEIGHTD_TESTS_CORE_FORMAT_PICKLE_PYTHON_UTIL_H_
