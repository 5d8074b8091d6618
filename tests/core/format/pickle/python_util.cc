#include "tests/core/format/pickle/python_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace weightd {
namespace testing_util {

std::string PythonBinary() {
  const char* env = std::getenv("WEIGHTD_PYTHON");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/python3";
}

std::string TempPath(const std::string& name) {
  static std::atomic<int> counter{0};
  return absl::StrCat(::testing::TempDir(), "/pickle_test_", getpid(), "_", counter++, "_",
                      name);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileOrDie(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(out.good()) << path;
}

absl::StatusOr<std::string> RunPython(const std::string& script,
                                      const std::vector<std::string>& args) {
  std::string script_path = TempPath("script.py");
  WriteFileOrDie(script_path, script);
  std::string cmd = absl::StrCat("'", PythonBinary(), "' '", script_path, "'");
  for (const std::string& arg : args) absl::StrAppend(&cmd, " '", arg, "'");
  absl::StrAppend(&cmd, " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("popen failed");
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  int rc = pclose(pipe);
  std::remove(script_path.c_str());
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("python exited with ", WEXITSTATUS(rc), ":\n", output));
  }
  return output;
}

absl::StatusOr<std::string> PickleFromPython(const std::string& body) {
  static const char kPrelude[] = R"PY(
import collections, io, pickle, sys, zipfile
_out = sys.argv[1]
def raw(b):
    with open(_out, 'wb') as f:
        f.write(b)
def save(obj):
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    raw(z.read([n for n in z.namelist() if n.endswith('/data.pkl')][0]))
)PY";
  std::string out_path = TempPath("out.pkl");
  // Importing torch takes seconds; scripts that only use pickle skip it.
  bool needs_torch = body.find("torch") != std::string::npos;
  absl::StatusOr<std::string> run = RunPython(
      absl::StrCat(needs_torch ? "import torch\n" : "", kPrelude, body, "\n"), {out_path});
  if (!run.ok()) return run.status();
  std::string bytes = ReadFileOrDie(out_path);
  std::remove(out_path.c_str());
  return bytes;
}

StorageLoader RecordingLoader::loader() {
  return [this](const StorageRequest& request)
             -> absl::StatusOr<std::shared_ptr<const Storage>> {
    requests.push_back(request);
    auto storage = std::make_shared<Storage>();
    storage->dtype = request.dtype;
    storage->key = request.key;
    storage->buffer = Buffer::Own(
        std::vector<uint8_t>(static_cast<size_t>(request.numel) * DTypeSize(request.dtype)));
    storage->data = storage->buffer->data();
    storage->nbytes = storage->buffer->size();
    return std::shared_ptr<const Storage>(std::move(storage));
  };
}

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace testing_util
}  // namespace weightd
