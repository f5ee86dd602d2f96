// Process-wide runtime settings measured to matter on small shared machines.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace imagescore {

// glibc's default malloc returns large blocks to the kernel after each use, so every
// batch page-faults its tensors in again (3-6x slower LibTorch measured here). This keeps
// freed memory in the heap. `enable=false` restores glibc's defaults (for benchmarks).
void tune_malloc(bool enable = true);

// Sets LibTorch's intra-op thread count (Debian's build defaults to one thread).
// threads <= 0 means all hardware threads; more than max_threads() is refused.
int set_threads(int threads);

// Number of hardware threads (at least 1).
int hardware_threads();

// The most threads set_threads accepts: 4 per hardware thread. Compute threads beyond
// the cores only slow a run down (--threads 1000 took 30x longer on 18 images), and a
// typo could otherwise create thousands of OS threads.
int max_threads();

// Calls f(begin, end) on disjoint chunks covering [0, n), on LibTorch's intra-op threads
// (chunks of at least `grain`). Callers keep per-index work independent of the split, so
// results never depend on the thread count. Exceptions reach the caller.
void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f);

}  // namespace imagescore
