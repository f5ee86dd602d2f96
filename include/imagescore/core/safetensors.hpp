// The safetensors container (a little-endian u64 header length, a JSON header, raw
// little-endian tensor bytes): readable from Python with `safetensors` or a few lines of
// numpy. Used for checkpoints, profiles and reference files. The writer adds a CRC-32 of
// the whole file (the header in canonical JSON, then the data) to the metadata as
// `imagescore.checksum`; the reader verifies it when present, and the readers of
// imagescore's own files require it (`require_checksum`), so that an edited option or
// normalisation constant in a header cannot silently change results.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace imagescore {

enum class DType { F64, F32, I64, U8, BOOL };
const char* dtype_name(DType dtype);      // "F64", "F32", "I64", "U8", "BOOL"
std::size_t dtype_size(DType dtype);

class MappedFile;

struct StoredTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::string bytes;  // raw little-endian data, product(shape) * dtype_size bytes
  // Instead of `bytes`: data held elsewhere, in the file's mapping (map_safetensors) or,
  // for a writer, in memory that outlives the write (a profile's masks).
  std::string_view view;
  std::string_view data() const { return view.data() ? view : std::string_view(bytes); }
  std::size_t numel() const;
};

// What the file's checksum covered (the checksum itself was verified when present).
enum class Integrity {
  None,          // no checksum: a file from elsewhere, or one whose checksum was removed
  DataOnly,      // `imagescore.crc32` of imagescore 0.x: the data section only
  HeaderAndData  // `imagescore.checksum`
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // without the checksum entry
  std::vector<StoredTensor> tensors;  // in the order written (sorted by offset when read)

  // The tensor with this name; throws Error("<file>: missing tensor <name>") if absent.
  const StoredTensor& at(const std::string& name) const;
  bool has(const std::string& name) const;
  std::string path;  // set by the reader, for error messages
  Integrity integrity = Integrity::None;  // set by the reader
  std::shared_ptr<const MappedFile> mapping;  // what the `view`s of a mapped file point into
};

// Written atomically, tensor by tensor (no copy of the data is made). Tensor names must
// be unique; metadata must not use the keys `imagescore.checksum` and `imagescore.crc32`
// (the writer owns them).
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// Validates everything before trusting it: header length against the file size, JSON
// syntax, dtype names, shapes (non-negative, product fits), offsets (in range, ordered,
// non-overlapping, covering the data section), and the checksum. Errors name the file.
SafetensorsFile read_safetensors(const std::string& path);
// The same, with the file mapped into memory: the tensors `keep_mapped` picks stay there
// (`view`, paged in when read; `bytes` empty), the others are copied. The checksum is
// verified over the mapping, whose pages are then given back.
SafetensorsFile map_safetensors(const std::string& path, const std::function<bool(const StoredTensor&)>& keep_mapped);

// The same in memory (sending files between processes): `path` names them in errors.
std::string encode_safetensors(const SafetensorsFile& file, const std::string& path);
SafetensorsFile decode_safetensors(const std::string& bytes, const std::string& path);

// Fails unless the whole file was checksummed (files of imagescore 0.x and files without
// a checksum are refused), naming the command that rebuilds it.
void require_checksum(const SafetensorsFile& file, const std::string& rebuild_with);

}  // namespace imagescore
