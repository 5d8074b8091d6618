// local_limit_bench: the physical limit of a same-node Load (bench/RESULTS.md,
// same-node section): mmap a page-cached checkpoint file and memcpy it into
// pre-touched ("warm module") buffers, one per TENSOR_BYTES, in a fresh
// process, with the ways of getting the source pages mapped that the client
// could use; plus pread into the same buffers, and xxh64 over the mapping
// (what ClientOptions::verify_local_checksums costs). No LibTorch, no server.
// The copy is also tried on several threads (the buffers split in byte-equal
// runs, as at::parallel_for splits torch 2.x's copy_), with non-temporal
// stores (which skip the read-for-ownership of each destination line), and
// through the client's own ParallelCopier, every tensor queued and waited
// for once, as Load copies (client/parallel_copy.h).
//
// With --write_dir DIR, also the limit of `weightctl pull -o DIR/...`: the
// same bytes written from the warm buffers into a new file there (1 MiB
// write()s; and durably: writeback started every 32 MiB as AtomicFile
// does, then fsync), which is what the page cache and disk allow.
//
//   local_limit_bench FILE [--iters 3] [--tensor_bytes 4194304] [--threads N]
//                          [--write_dir DIR]
// Prints "RESULT NAME_best_s / NAME_mean_s / NAME_faults" lines, as load_bench.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "client/parallel_copy.h"

namespace {

using Clock = std::chrono::steady_clock;

long MinorFaults() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

void Result(const std::string& key, double value) { std::printf("RESULT %s %.6f\n", key.c_str(), value); }

void Time(const std::string& name, int iters, const std::function<void()>& fn) {
  double best = 1e30, sum = 0;
  long faults = 0;
  for (int i = 0; i < iters; ++i) {
    const long f0 = MinorFaults();
    const auto t0 = Clock::now();
    fn();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    faults += MinorFaults() - f0;
    best = std::min(best, s);
    sum += s;
  }
  Result(name + "_best_s", best);
  Result(name + "_mean_s", sum / iters);
  Result(name + "_faults", static_cast<double>(faults) / iters);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: local_limit_bench FILE [--iters N] [--tensor_bytes N]\n");
    return 2;
  }
  const std::string path = argv[1];
  int iters = 3;
  size_t tensor_bytes = 4 << 20;
  std::string write_dir;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--tensor_bytes") == 0) tensor_bytes = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--write_dir") == 0) write_dir = argv[i + 1];
  }
  if (threads < 1) threads = 1;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    std::perror(path.c_str());
    return 1;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  // Warm the page cache (the server has the file mapped in practice).
  {
    std::vector<char> buf(16 << 20);
    for (off_t off = 0; ::pread(fd, buf.data(), buf.size(), off) > 0; off += buf.size()) {
    }
  }
  // The "module": one pre-touched buffer per tensor.
  std::vector<std::vector<char>> dest;
  for (size_t off = 0; off < size; off += tensor_bytes) {
    dest.emplace_back(std::min(tensor_bytes, size - off), 1);
  }
  std::printf("file %s: %zu bytes, %zu buffers of %zu\n", path.c_str(), size, dest.size(),
              tensor_bytes);

  auto copy_from = [&](const char* base, const std::function<void(size_t, size_t)>& before) {
    size_t off = 0;
    for (std::vector<char>& d : dest) {
      if (before) before(off, d.size());
      std::memcpy(d.data(), base + off, d.size());
      off += d.size();
    }
  };
  auto with_map = [&](int flags, const std::function<void(char*)>& body) {
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED | flags, fd, 0);
    if (addr == MAP_FAILED) {
      std::perror("mmap");
      std::exit(1);
    }
    body(static_cast<char*>(addr));
    ::munmap(addr, size);
  };

  // The byte range [lo, hi) of the file copied by `copy` into the buffers it
  // overlaps, each buffer piece by piece; `threads` ranges of equal bytes.
  using CopyFn = void (*)(char*, const char*, size_t);
  auto copy_range = [&](const char* base, size_t lo, size_t hi, CopyFn copy) {
    size_t off = 0;
    for (std::vector<char>& d : dest) {
      const size_t a = std::max(lo, off), b = std::min(hi, off + d.size());
      if (a < b) copy(d.data() + (a - off), base + a, b - a);
      off += d.size();
    }
  };
  auto copy_parallel = [&](const char* base, int n, CopyFn copy) {
    std::vector<std::thread> pool;
    const size_t per = (size / n + 4095) / 4096 * 4096;
    for (int t = 1; t < n; ++t) {
      pool.emplace_back([&, t] { copy_range(base, std::min(size, t * per), std::min(size, (t + 1) * per), copy); });
    }
    copy_range(base, 0, std::min(size, per), copy);
    for (std::thread& th : pool) th.join();
  };
  const CopyFn plain = [](char* d, const char* s, size_t n) { std::memcpy(d, s, n); };
  std::printf("threads for the parallel rows: %d\n", threads);

  Time("mmap_fault", iters, [&] { with_map(0, [&](char* base) { copy_from(base, nullptr); }); });
  Time("mmap_populate", iters,
       [&] { with_map(MAP_POPULATE, [&](char* base) { copy_from(base, nullptr); }); });
  const CopyFn nt = [](char* d, const char* s, size_t n) {
    weightd::client_internal::CopyNonTemporal(d, s, n);
  };
  weightd::client_internal::ParallelCopier copier(threads);
  // As Client::Load on the local path: every tensor's copy queued, one wait.
  auto copier_from = [&](const char* base) {
    size_t off = 0;
    for (std::vector<char>& d : dest) {
      copier.Submit(d.data(), base + off, d.size());
      off += d.size();
    }
    copier.Wait();
  };
  Time("mmap_populate_nt", iters,
       [&] { with_map(MAP_POPULATE, [&](char* base) { copy_range(base, 0, size, nt); }); });
  Time("mmap_populate_copier", iters,
       [&] { with_map(MAP_POPULATE, [&](char* base) { copier_from(base); }); });
  Time("mmap_fault_copier", iters, [&] { with_map(0, [&](char* base) { copier_from(base); }); });
  Time("mmap_populate_threads", iters,
       [&] { with_map(MAP_POPULATE, [&](char* base) { copy_parallel(base, threads, plain); }); });
  Time("mmap_fault_threads", iters,
       [&] { with_map(0, [&](char* base) { copy_parallel(base, threads, plain); }); });
  Time("madvise_willneed_sequential", iters, [&] {
    with_map(0, [&](char* base) {
      ::madvise(base, size, MADV_WILLNEED);
      ::madvise(base, size, MADV_SEQUENTIAL);
      copy_from(base, nullptr);
    });
  });
#ifdef MADV_POPULATE_READ
  Time("madvise_populate_read_per_tensor", iters, [&] {
    with_map(0, [&](char* base) {
      const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
      copy_from(base, [&](size_t off, size_t n) {
        const size_t lo = off / page * page;
        ::madvise(base + lo, off + n - lo, MADV_POPULATE_READ);
      });
    });
  });
#endif
  Time("pread", iters, [&] {
    size_t off = 0;
    for (std::vector<char>& d : dest) {
      if (::pread(fd, d.data(), d.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(d.size())) {
        std::perror("pread");
        std::exit(1);
      }
      off += d.size();
    }
  });
  if (!write_dir.empty()) {
    const std::string out = write_dir + "/local_limit_bench.write-tmp";
    for (const bool sync : {false, true}) {
      Time(sync ? "file_write_fsync" : "file_write", iters, [&] {
        const int wfd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (wfd < 0) {
          std::perror(out.c_str());
          std::exit(1);
        }
        size_t written = 0, handed = 0;
        for (const std::vector<char>& d : dest) {
          // 1 MiB writes, as pull's writer thread makes them.
          for (size_t at = 0; at < d.size(); at += size_t{1} << 20) {
            const size_t n = std::min(d.size() - at, size_t{1} << 20);
            if (::write(wfd, d.data() + at, n) != static_cast<ssize_t>(n)) {
              std::perror("write");
              std::exit(1);
            }
          }
          written += d.size();
          // As AtomicFile: writeback starts every 32 MiB, so fsync waits
          // only for the tail.
          if (sync && written - handed >= (size_t{32} << 20)) {
            ::sync_file_range(wfd, handed, written - handed, SYNC_FILE_RANGE_WRITE);
            handed = written;
          }
        }
        if (sync && ::fsync(wfd) != 0) std::perror("fsync");
        ::close(wfd);
        ::unlink(out.c_str());
      });
    }
  }
  uint64_t sink = 0;
  Time("xxh64_mapped", iters, [&] {
    with_map(MAP_POPULATE, [&](char* base) { sink ^= XXH64(base, size, 0); });
  });
  Time("xxh64_warm_buffers", iters, [&] {
    for (const std::vector<char>& d : dest) sink ^= XXH64(d.data(), d.size(), 0);
  });
  std::printf("(checksum fold %016llx)\n", static_cast<unsigned long long>(sink));
  ::close(fd);
  return 0;
}
