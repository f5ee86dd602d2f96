// Shared helpers for the test suite.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "imagescore/core/error.hpp"

namespace imagescore::testing {

// A fresh folder under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static std::mt19937_64 rng(std::random_device{}());
    path_ = std::filesystem::temp_directory_path() / ("imagescore-test-" + std::to_string(rng()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Where the real data sets live when the project sits beside ../shared (empty if absent).
inline std::string shared_data_dir() {
  for (const char* candidate : {"../shared/data", "../../shared/data", "../../../shared/data"}) {
    std::error_code ec;
    if (std::filesystem::is_directory(candidate, ec)) return std::filesystem::absolute(candidate).string();
  }
  if (const char* env = std::getenv("IMAGESCORE_SHARED_DATA")) return env;
  return "";
}

}  // namespace imagescore::testing

// Expects `statement` to throw imagescore::Error whose message contains `substring`.
#define EXPECT_ERROR_CONTAINS(statement, substring)                                   \
  do {                                                                                \
    try {                                                                             \
      statement;                                                                      \
      ADD_FAILURE() << "expected imagescore::Error containing '" << (substring) << "'"; \
    } catch (const imagescore::Error& e) {                                            \
      EXPECT_NE(std::string(e.what()).find(substring), std::string::npos)             \
          << "message was: " << e.what();                                             \
    }                                                                                 \
  } while (0)
