#include "imagescore/core/runtime.hpp"

#include <ATen/Parallel.h>
#include <malloc.h>

#include <cstdlib>
#include <thread>

#include "imagescore/core/error.hpp"

namespace imagescore {

void tune_malloc(bool enable) {
  // glibc defaults: blocks >= 128 KiB are mmap'ed and unmapped on free, and the heap
  // top is trimmed past 128 KiB; both make each batch's tensors page-fault in again.
  constexpr int kGlibcMmapMax = 65536;
  constexpr int kGlibcTrimThreshold = 128 * 1024;
  if (enable) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  } else {
    mallopt(M_MMAP_MAX, kGlibcMmapMax);
    mallopt(M_TRIM_THRESHOLD, kGlibcTrimThreshold);
  }
}

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f) {
  if (n == 0) return;
  at::parallel_for(0, int64_t(n), int64_t(grain), [&](int64_t begin, int64_t end) { f(std::size_t(begin), std::size_t(end)); });
}

int max_threads() { return 4 * hardware_threads(); }

int set_threads(int threads) {
  if (threads > max_threads())
    fail_option("threads", "must be at most " + std::to_string(max_threads()) + " (4 per core), got " +
                               std::to_string(threads));
  int n = threads > 0 ? threads : hardware_threads();
  at::set_num_threads(n);
  return n;
}

}  // namespace imagescore
