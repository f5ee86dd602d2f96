// The safetensors container (a little-endian u64 header length, a JSON header, raw
// little-endian tensor bytes): readable from Python with `safetensors` or a few lines of
// numpy. Used for checkpoints and profiles. The writer adds a CRC-32 of the data section
// to the metadata (`imagescore.crc32`); the reader verifies it when present.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace imagescore {

enum class DType { F64, F32, I64, U8, BOOL };
const char* dtype_name(DType dtype);      // "F64", "F32", "I64", "U8", "BOOL"
std::size_t dtype_size(DType dtype);

struct StoredTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::string bytes;  // raw little-endian data, product(shape) * dtype_size bytes
  std::size_t numel() const;
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::vector<StoredTensor> tensors;  // in the order written (sorted by offset when read)

  // The tensor with this name; throws Error("<file>: missing tensor <name>") if absent.
  const StoredTensor& at(const std::string& name) const;
  bool has(const std::string& name) const;
  std::string path;  // set by the reader, for error messages
};

// Written atomically. Tensor names must be unique; metadata must not use the key
// `imagescore.crc32` (the writer owns it).
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// Validates everything before trusting it: header length against the file size, JSON
// syntax, dtype names, shapes (non-negative, product fits), offsets (in range, ordered,
// non-overlapping, covering the data section), and the checksum. Errors name the file.
SafetensorsFile read_safetensors(const std::string& path);

// The same in memory (sending files between processes): `path` names them in errors.
std::string encode_safetensors(const SafetensorsFile& file, const std::string& path);
SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& path);

}  // namespace imagescore
