// Bytes of small test files: big-endian header fields and encoded images.
#pragma once

#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <cstdint>
#include <string>
#include <vector>

namespace imagescore::testing {

// A big-endian 32-bit field (IDX headers).
inline std::string be32(std::uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

// A JPEG (quality 100, no chroma subsampling) of interleaved HWC pixels, 1 or 3 channels.
inline std::string encode_jpeg(int width, int height, int channels, const std::vector<std::uint8_t>& hwc) {
  tjhandle compressor = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(compressor, hwc.data(), width, 0, height, channels == 1 ? TJPF_GRAY : TJPF_RGB, &buffer,
                             &size, channels == 1 ? TJSAMP_GRAY : TJSAMP_444, 100, 0);
  EXPECT_EQ(rc, 0) << tjGetErrorStr2(compressor);
  std::string bytes(reinterpret_cast<char*>(buffer), size);
  tjFree(buffer);
  tjDestroy(compressor);
  return bytes;
}

}  // namespace imagescore::testing
