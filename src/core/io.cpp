#include "imagescore/core/io.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>

#include "imagescore/core/error.hpp"
#include "imagescore/core/progress.hpp"

namespace imagescore {
namespace fs = std::filesystem;

void check_input_file(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (fs::is_directory(status)) fail(path, "is a folder, expected a file");
  // /dev/zero or /dev/urandom never end: they were read until memory ran out. Pipes
  // stay allowed (`<(zcat ...)`).
  if (fs::is_character_file(status) || fs::is_block_file(status)) fail(path, "is a device, expected a file");
}

std::string read_file_prefix(const std::string& path, std::uint64_t max_bytes, bool& more) {
  check_input_file(path);
  // gzread passes uncompressed files through unchanged.
  gzFile in = gzopen(path.c_str(), "rb");
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  gzbuffer(in, 1 << 17);
  std::string data;
  char buf[1 << 16];
  more = false;
  for (;;) {
    // At the limit, one more byte tells whether the file goes on.
    const std::uint64_t wanted = std::max<std::uint64_t>(1, std::min<std::uint64_t>(sizeof buf, max_bytes - data.size()));
    int n = gzread(in, buf, unsigned(wanted));
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(in, &code);
      gzclose(in);
      fail(path, "corrupt or truncated gzip data (" + msg + ")");
    }
    if (n == 0) break;
    if (data.size() + std::uint64_t(n) > max_bytes) {
      data.append(buf, std::size_t(max_bytes - data.size()));
      more = true;
      gzclose(in);
      return data;
    }
    data.append(buf, std::size_t(n));
  }
  // A truncated gzip stream ends without error from gzread but gzclose reports it.
  int rc = gzclose(in);
  if (rc == Z_BUF_ERROR) fail(path, "truncated gzip data");
  if (rc != Z_OK) fail(path, "read error");
  return data;
}

std::string read_file(const std::string& path, std::uint64_t max_bytes) {
  bool more = false;
  std::string data = read_file_prefix(path, max_bytes, more);
  if (more) fail(path, "larger than the limit of " + std::to_string(max_bytes) + " bytes");
  return data;
}

void check_output_path(const std::string& path) {
  // An empty name failed only at the rename, as ": cannot rename temporary file into place".
  if (path.empty()) fail_option("out", "is empty: give a file name");
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  check_output_path(path);
  fs::path target(path);
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(path, "output folder " + dir.string() + " does not exist");
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, std::string("cannot write: ") + std::strerror(errno));
    try {
      write(out);
    } catch (...) {
      out.close();
      std::remove(tmp.c_str());
      throw;
    }
    out.flush();
    if (!out) {
      int err = errno;
      out.close();
      std::remove(tmp.c_str());
      fail(path, std::string("write failed: ") + (err ? std::strerror(err) : "I/O error (disk full?)"));
    }
    out.close();
    if (out.fail()) {
      std::remove(tmp.c_str());
      fail(path, "write failed on close (disk full?)");
    }
  }
  // After Ctrl-C nothing is published, however close to the end the command was.
  if (interrupt_requested()) {
    std::remove(tmp.c_str());
    check_interrupted();
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    fail(path, std::string("cannot rename temporary file into place: ") + std::strerror(err));
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  write_file_atomic(path, [&](std::ostream& out) { out.write(contents.data(), std::streamsize(contents.size())); });
}

void make_directories(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path)) fail(path, "cannot create folder: " + ec.message());
}

std::uint64_t fnv1a64(const void* data, std::size_t size, std::uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h = seed;
  for (std::size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex64(std::uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

std::uint32_t crc32_of(const void* data, std::size_t size, std::uint32_t running) {
  uLong crc = running;
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    uInt chunk = size > (1u << 30) ? (1u << 30) : uInt(size);
    crc = crc32(crc, p, chunk);
    p += chunk;
    size -= chunk;
  }
  return std::uint32_t(crc);
}

std::uint64_t memory_limit(std::uint64_t asked) {
  if (asked > 0) return asked;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? std::uint64_t(pages) * std::uint64_t(page) / 2 : std::uint64_t(1) << 32;
}

std::uint32_t crc32_of_file(const std::string& path) {
  check_input_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::vector<char> block(1 << 20);
  std::uint32_t crc = 0;
  while (in) {
    in.read(block.data(), std::streamsize(block.size()));
    crc = crc32_of(block.data(), std::size_t(in.gcount()), crc);
  }
  if (in.bad()) fail(path, "read error");
  return crc;
}

}  // namespace imagescore

namespace imagescore {
namespace {

// The live mappings, for the SIGBUS handler: fixed slots that it reads without locks or
// allocation (a slot is published by storing its start last and retired by clearing it).
struct MappingSlot {
  std::atomic<const char*> begin{nullptr};
  std::size_t size = 0;
  char message[600] = {};
  std::size_t message_size = 0;
};
constexpr std::size_t kMappingSlots = 64;
MappingSlot g_mappings[kMappingSlots];

std::size_t take_slot(const char* begin, std::size_t size, const std::string& path) {
  const std::string message = "imagescore: error: " + path + ": truncated while in use (memory-mapped)\n";
  for (std::size_t i = 0; i < kMappingSlots; ++i) {
    const char* expected = nullptr;
    // Claim with a placeholder, fill, then publish the real start.
    static const char claimed = 0;
    if (!g_mappings[i].begin.compare_exchange_strong(expected, &claimed)) continue;
    g_mappings[i].size = size;
    g_mappings[i].message_size = std::min(message.size(), sizeof g_mappings[i].message);
    std::memcpy(g_mappings[i].message, message.data(), g_mappings[i].message_size);
    g_mappings[i].begin.store(begin);
    return i;
  }
  return kMappingSlots;  // not registered: a fault then has no name, only the default signal
}

void on_bus_error(int signal, siginfo_t* info, void*) {
  const char* address = static_cast<const char*>(info->si_addr);
  for (auto& slot : g_mappings) {
    const char* begin = slot.begin.load();
    if (begin && slot.size && address >= begin && address < begin + slot.size) {
      ssize_t written = write(STDERR_FILENO, slot.message, slot.message_size);
      (void)written;
      _exit(1);
    }
  }
  ::signal(signal, SIG_DFL);
  raise(signal);
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  check_input_file(path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd_, &st) != 0) {
    const int error = errno;
    ::close(fd_);
    fail(path, std::string("cannot read: ") + std::strerror(error));
  }
  size_ = std::size_t(st.st_size);
  mtime_ns_ = std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (size_ > 0) {
    void* address = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (address == MAP_FAILED) {
      const int error = errno;
      ::close(fd_);
      fail(path, std::string("cannot map into memory: ") + std::strerror(error));
    }
    data_ = static_cast<const char*>(address);
  }
  slot_ = take_slot(data_, size_, path);
}

MappedFile::~MappedFile() {
  if (slot_ < kMappingSlots) {
    g_mappings[slot_].size = 0;  // a claimed slot is never matched with a stale size
    g_mappings[slot_].begin.store(nullptr);
  }
  if (data_) munmap(const_cast<char*>(data_), size_);
  ::close(fd_);
}

void MappedFile::check_unchanged() const {
  struct stat st {};
  if (fstat(fd_, &st) != 0) fail(path_, std::string("cannot read: ") + std::strerror(errno));
  const std::int64_t mtime = std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (std::size_t(st.st_size) != size_ || mtime != mtime_ns_)
    fail(path_, "changed while in use (it is memory-mapped: write a new file and rename it instead of editing it in place)");
}

void MappedFile::release_pages() const {
  if (data_) madvise(const_cast<char*>(data_), size_, MADV_DONTNEED);
}

void install_mapped_file_fault_handler() {
  struct sigaction action {};
  action.sa_sigaction = on_bus_error;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, nullptr);
}

}  // namespace imagescore
