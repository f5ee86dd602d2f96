// The fuzz targets link no LibTorch: the library's parallel loops run serially here
// (their results never depend on the split, docs/method.md section 7).
#include "imagescore/core/runtime.hpp"

namespace imagescore {

void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f) {
  (void)grain;
  if (n > 0) f(0, n);
}

}  // namespace imagescore
