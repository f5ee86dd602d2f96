// Process-wide runtime settings measured to matter on small shared machines.
#pragma once

namespace imagescore {

// glibc's default malloc returns large blocks to the kernel after each use, so every
// batch page-faults its tensors in again (3-6x slower LibTorch measured here). This keeps
// freed memory in the heap. `enable=false` restores glibc's defaults (for benchmarks).
void tune_malloc(bool enable = true);

// Sets LibTorch's intra-op thread count (Debian's build defaults to one thread).
// threads <= 0 means all hardware threads.
int set_threads(int threads);

// Number of hardware threads (at least 1).
int hardware_threads();

}  // namespace imagescore
