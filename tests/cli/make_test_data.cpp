// Writes a small, clearly separable 10-class IDX data set (28x28, like Fashion-MNIST)
// for the end-to-end test of the command-line program: class c shows a bright 6x6 block
// at a class-specific place on a noisy background. With --photos, a folder of PNG
// "photos" of mixed sizes instead: three classes told apart by brightness.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "imagescore/data/image_codec.hpp"

namespace {

void put_u32(std::ofstream& out, std::uint32_t v) {
  const char bytes[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  out.write(bytes, 4);
}

void write_set(const std::string& dir, const std::string& prefix, int per_class, std::uint64_t seed) {
  const int n = per_class * 10, side = 28;
  std::ofstream images(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
  std::ofstream labels(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
  put_u32(images, 0x803);
  put_u32(images, std::uint32_t(n));
  put_u32(images, side);
  put_u32(images, side);
  put_u32(labels, 0x801);
  put_u32(labels, std::uint32_t(n));
  std::uint64_t state = seed;
  for (int i = 0; i < n; ++i) {
    const int c = i % 10;
    std::vector<char> px(side * side);
    for (auto& p : px) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      p = char((state >> 33) % 70);
    }
    const int y0 = 2 + (c / 5) * 12, x0 = 1 + (c % 5) * 5;
    for (int y = y0; y < y0 + 6; ++y)
      for (int x = x0; x < x0 + 4; ++x) px[std::size_t(y * side + x)] = char(230);
    images.write(px.data(), std::streamsize(px.size()));
    labels.put(char(c));
  }
}

// DIR/<class>/<i>.png, RGB, 12 per class, sides from 12 to 59 pixels.
void write_photos(const std::string& dir) {
  const char* classes[] = {"dark", "grey", "light"};
  std::uint64_t state = 7;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return unsigned(state >> 33);
  };
  for (int c = 0; c < 3; ++c) {
    std::filesystem::create_directories(dir + "/" + classes[c]);
    for (int i = 0; i < 12; ++i) {
      const imagescore::ImageShape shape{3, int(12 + next() % 48), int(12 + next() % 48)};
      std::vector<std::uint8_t> chw(shape.pixels());
      for (auto& p : chw) p = std::uint8_t(30 + 85 * c + next() % 30);
      std::ofstream(dir + "/" + classes[c] + "/" + std::to_string(i) + ".png", std::ios::binary)
          << imagescore::encode_png(shape, chw.data());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--photos") {
    write_photos(argv[2]);
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_test_data DIR | make_test_data --photos DIR\n");
    return 2;
  }
  write_set(argv[1], "train", 40, 1);
  write_set(argv[1], "t10k", 10, 2);
  return 0;
}
