// File helpers shared by every reader and writer.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace imagescore {

// Fails on a folder or a device (endless: /dev/zero) given as an input file.
void check_input_file(const std::string& path);

// Reads a whole file; a gzip file is decompressed transparently. Refuses files larger
// than max_bytes so that a hostile size never triggers a huge allocation.
std::string read_file(const std::string& path, std::uint64_t max_bytes = std::uint64_t(1) << 34);

// The first max_bytes bytes of a file (all of it if shorter), decompressed like
// read_file; `more` says whether the file goes on. Readers whose header fixes the size
// stop there, so a small gzip file that inflates to gigabytes is never held in memory.
std::string read_file_prefix(const std::string& path, std::uint64_t max_bytes, bool& more);

// Fails on an empty output name (OptionError for the field `out`).
void check_output_path(const std::string& path);

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
// `running`: the CRC of what came before, to checksum pieces as one stream.
std::uint32_t crc32_of(const void* data, std::size_t size, std::uint32_t running = 0);
// What a fit may hold in memory: `asked` bytes, or, when 0, half the machine's physical
// memory (the default of --max-memory).
std::uint64_t memory_limit(std::uint64_t asked);

// The CRC-32 of a whole file, read in blocks (memory does not grow with the file).
std::uint32_t crc32_of_file(const std::string& path);

// A file mapped read-only into memory, so that its large parts (the profiles' masks) are
// paged in as they are read instead of being held. Our writers replace files by renaming,
// which a mapping does not see; a file changed in place is noticed by check_unchanged(),
// and one truncated in place faults on access: with install_mapped_file_fault_handler()
// that fault ends the program with a one-line error naming the file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // fails naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const char* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Fails ("<path>: changed while in use ...") when the file's size or modification time
  // differ from when it was mapped.
  void check_unchanged() const;
  // Drops the mapping's resident pages (read again from the page cache when touched), as
  // after a checksum over the whole file.
  void release_pages() const;

 private:
  std::string path_;
  int fd_ = -1;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  std::int64_t mtime_ns_ = 0;
  std::size_t slot_ = 0;
};

// Turns SIGBUS inside a MappedFile (its file truncated while in use) into "imagescore:
// error: <path>: truncated while in use (memory-mapped)" and exit status 1.
void install_mapped_file_fault_handler();

}  // namespace imagescore
