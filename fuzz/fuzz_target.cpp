// The libFuzzer entry point, compiled once per parser with IMAGESCORE_FUZZ_PARSER set to
// one of the functions of parsers.hpp (see CMakeLists.txt).
#include "parsers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::IMAGESCORE_FUZZ_PARSER(data, size);
  return 0;
}
