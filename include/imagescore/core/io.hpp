// File helpers shared by every reader and writer.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace imagescore {

// Reads a whole file; a gzip file is decompressed transparently. Refuses files larger
// than max_bytes so that a hostile size never triggers a huge allocation.
std::string read_file(const std::string& path, std::uint64_t max_bytes = std::uint64_t(1) << 34);

// Writes through a temporary file in the same folder, then renames it over `path`: an
// interrupted run never leaves a half-written file under the final name.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);
void write_file_atomic(const std::string& path, const std::string& contents);

// Creates a folder (and its parents) or fails with a clear message.
void make_directories(const std::string& path);

// 64-bit FNV-1a, used to identify model weights and data sets (not a security hash).
std::uint64_t fnv1a64(const void* data, std::size_t size, std::uint64_t seed = 1469598103934665603ULL);
std::string hex64(std::uint64_t value);

// CRC-32 (zlib) of a byte range, used as the checksum of binary files.
std::uint32_t crc32_of(const void* data, std::size_t size);

}  // namespace imagescore
