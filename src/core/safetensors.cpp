#include "imagescore/core/safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore {
namespace {

using nlohmann::json;

// The checksum covers the header (every metadata entry and tensor entry, in the
// canonical JSON form) and the data; files of imagescore 0.x carried a CRC of the data
// only, under the older key.
constexpr const char* kChecksumKey = "imagescore.checksum";
constexpr const char* kDataChecksumKey = "imagescore.crc32";
constexpr const char* kChecksumPrefix = "crc32:";
constexpr const char* kMetadataKey = "__metadata__";
// The reference implementation refuses headers above 100 MB; so do we, so that a
// corrupted length never triggers a huge parse.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

const DType kAllDTypes[] = {DType::F64, DType::F32, DType::I64, DType::U8, DType::BOOL};

bool parse_dtype(const std::string& name, DType& dtype) {
  for (DType candidate : kAllDTypes) {
    if (name == dtype_name(candidate)) {
      dtype = candidate;
      return true;
    }
  }
  return false;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string hex8(std::uint32_t crc) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(crc));
  return buf;
}

std::string crc_text(const char* data, std::size_t size) { return hex8(crc32_of(data, size)); }

// The CRC-32 of the canonical header (sorted keys, no spaces, without the checksum
// entry) followed by the data.
std::string full_checksum(const json& header_without_checksum, const char* data, std::size_t size) {
  const std::string canonical = header_without_checksum.dump();
  return kChecksumPrefix + hex8(crc32_of(data, size, crc32_of(canonical.data(), canonical.size())));
}

std::string in_quotes(const std::string& name) { return "'" + name + "'"; }

// Checks a tensor's byte count against its dtype and shape (shape dimensions may come
// from an untrusted file: negative or overflowing products are refused).
void check_tensor_size(const std::string& path, const StoredTensor& tensor, std::uint64_t byte_count) {
  std::uint64_t expected = dtype_size(tensor.dtype);
  for (std::int64_t dim : tensor.shape) {
    if (dim < 0) {
      fail(path, "tensor " + in_quotes(tensor.name) + ": negative dimension in shape " + shape_text(tensor.shape));
    }
    if (dim != 0 && expected > std::numeric_limits<std::uint64_t>::max() / std::uint64_t(dim)) {
      fail(path, "tensor " + in_quotes(tensor.name) + ": shape " + shape_text(tensor.shape) + " is too large");
    }
    expected *= std::uint64_t(dim);
  }
  if (byte_count != expected) {
    fail(path, "tensor " + in_quotes(tensor.name) + ": " + std::to_string(byte_count) + " bytes, expected " +
                   std::to_string(expected) + " for shape " + shape_text(tensor.shape) + " of " +
                   dtype_name(tensor.dtype));
  }
}

std::vector<std::int64_t> parse_shape(const std::string& path, const std::string& name, const json& shape) {
  if (!shape.is_array()) fail(path, "tensor " + in_quotes(name) + ": shape must be an array of integers");
  std::vector<std::int64_t> dims;
  for (const json& dim : shape) {
    if (!dim.is_number_integer()) fail(path, "tensor " + in_quotes(name) + ": shape must be an array of integers");
    if (!dim.is_number_unsigned()) {
      fail(path, "tensor " + in_quotes(name) + ": negative dimension " + dim.dump() + " in shape");
    }
    std::uint64_t value = dim.get<std::uint64_t>();
    if (value > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
      fail(path, "tensor " + in_quotes(name) + ": dimension " + std::to_string(value) + " is too large");
    }
    dims.push_back(std::int64_t(value));
  }
  return dims;
}

struct TensorEntry {
  StoredTensor tensor;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

TensorEntry parse_entry(const std::string& path, const std::string& name, const json& entry,
                        std::uint64_t data_size) {
  std::string where = "tensor " + in_quotes(name) + ": ";
  if (!entry.is_object()) fail(path, where + "entry must be an object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) fail(path, where + "missing field '" + key + "'");
  }
  TensorEntry parsed;
  parsed.tensor.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string() || !parse_dtype(dtype.get<std::string>(), parsed.tensor.dtype)) {
    fail(path, where + "unknown dtype " + dtype.dump() + " (supported: F64, F32, I64, U8, BOOL)");
  }
  parsed.tensor.shape = parse_shape(path, name, entry["shape"]);
  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned() || offsets[0].get<std::uint64_t>() > offsets[1].get<std::uint64_t>()) {
    fail(path, where + "data_offsets must be [begin, end] with 0 <= begin <= end, got " + offsets.dump());
  }
  parsed.begin = offsets[0].get<std::uint64_t>();
  parsed.end = offsets[1].get<std::uint64_t>();
  check_tensor_size(path, parsed.tensor, parsed.end - parsed.begin);
  if (parsed.end > data_size) {
    fail(path, where + "data_offsets " + offsets.dump() + " extend beyond the data section (" +
                   std::to_string(data_size) + " bytes; truncated file?)");
  }
  return parsed;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& metadata) {
  if (!metadata.is_object()) fail(path, "__metadata__ must be an object of strings");
  std::map<std::string, std::string> result;
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) fail(path, "__metadata__ value of '" + key + "' is not a string");
    result[key] = value.get<std::string>();
  }
  return result;
}

// Parses the header JSON. nlohmann keeps the last of duplicate keys silently, so the
// top-level keys (tensor names) are checked for duplicates while parsing.
json parse_header(const std::string& path, const char* begin, const char* end) {
  std::set<std::string> names;
  std::string duplicate;
  auto check_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !names.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    header = json::parse(begin, end, check_duplicates);
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON header: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");
  if (!duplicate.empty()) fail(path, "duplicate tensor name " + in_quotes(duplicate));
  return header;
}

}  // namespace

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64: return 8;
    case DType::F32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::BOOL: return 1;
  }
  return 0;
}

std::size_t StoredTensor::numel() const {
  std::size_t count = 1;
  for (std::int64_t dim : shape) count *= std::size_t(dim);
  return count;
}

const StoredTensor& SafetensorsFile::at(const std::string& name) const {
  for (const StoredTensor& tensor : tensors) {
    if (tensor.name == name) return tensor;
  }
  fail(path, "missing tensor " + name);
}

bool SafetensorsFile::has(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const StoredTensor& t) { return t.name == name; });
}

namespace {

// The header (with its checksum) of a file of these tensors, laid out in order; the
// checksum runs over the tensors' data in place, so no copy of it is made.
std::string encode_header(const SafetensorsFile& file, const std::string& path) {
  for (const char* key : {kChecksumKey, kDataChecksumKey}) {
    if (file.metadata.count(key)) fail(path, std::string("metadata key '") + key + "' is reserved");
  }
  json header = json::object();
  std::uint64_t offset = 0;
  for (const StoredTensor& tensor : file.tensors) {
    if (tensor.name == kMetadataKey) fail(path, std::string("tensor name '") + kMetadataKey + "' is reserved");
    if (header.contains(tensor.name)) fail(path, "duplicate tensor name " + in_quotes(tensor.name));
    const std::size_t size = tensor.data().size();
    check_tensor_size(path, tensor, size);
    header[tensor.name] = {{"dtype", dtype_name(tensor.dtype)}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  header[kMetadataKey] = json::object();
  for (const auto& [key, value] : file.metadata) header[kMetadataKey][key] = value;
  const std::string canonical = header.dump();
  std::uint32_t crc = crc32_of(canonical.data(), canonical.size());
  for (const StoredTensor& tensor : file.tensors) crc = crc32_of(tensor.data().data(), tensor.data().size(), crc);
  header[kMetadataKey][kChecksumKey] = kChecksumPrefix + hex8(crc);

  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const json::exception& e) {
    fail(path, std::string("cannot encode header: ") + e.what());
  }
  // Like the reference writer: pad with spaces so that the data section starts 8-aligned.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[std::size_t(i)] = char((std::uint64_t(header_text.size()) >> (8 * i)) & 0xff);
  return length + header_text;
}

}  // namespace

std::string encode_safetensors(const SafetensorsFile& file, const std::string& path) {
  std::string bytes = encode_header(file, path);
  for (const StoredTensor& tensor : file.tensors) bytes += tensor.data();
  return bytes;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  const std::string header = encode_header(file, path);
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(header.data(), std::streamsize(header.size()));
    for (const StoredTensor& tensor : file.tensors) out.write(tensor.data().data(), std::streamsize(tensor.data().size()));
  });
}

SafetensorsFile read_safetensors(const std::string& path) { return decode_safetensors(read_file(path), path); }

namespace {

SafetensorsFile decode(std::string_view raw, const std::string& path,
                       const std::function<bool(const StoredTensor&)>& keep_mapped) {
  if (raw.size() < 8) {
    fail(path, "too short for a safetensors file (" + std::to_string(raw.size()) + " bytes, need at least 8)");
  }
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(raw[std::size_t(i)]);
  if (header_size > kMaxHeaderBytes) {
    fail(path, "header length " + std::to_string(header_size) + " exceeds the 100 MB limit (not a safetensors file?)");
  }
  if (header_size > raw.size() - 8) {
    fail(path, "header length " + std::to_string(header_size) + " exceeds the file size of " +
                   std::to_string(raw.size()) + " bytes (truncated file?)");
  }
  const char* header_begin = raw.data() + 8;
  json header = parse_header(path, header_begin, header_begin + header_size);
  const std::size_t data_start = 8 + std::size_t(header_size);
  const std::uint64_t data_size = raw.size() - data_start;

  SafetensorsFile file;
  file.path = path;
  std::vector<TensorEntry> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      file.metadata = parse_metadata(path, entry);
    } else {
      entries.push_back(parse_entry(path, name, entry, data_size));
    }
  }

  // Sorted by (begin, end) so that empty tensors come before the tensor sharing their offset.
  std::sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t covered = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const TensorEntry& entry = entries[i];
    if (entry.begin < covered) {
      fail(path, "tensor " + in_quotes(entry.tensor.name) + " overlaps tensor " +
                     in_quotes(entries[i - 1].tensor.name));
    }
    if (entry.begin > covered) {
      fail(path, "gap in the data section before tensor " + in_quotes(entry.tensor.name) + " (bytes " +
                     std::to_string(covered) + ".." + std::to_string(entry.begin) + " unused)");
    }
    covered = entry.end;
  }
  if (covered != data_size) {
    fail(path, std::to_string(data_size - covered) + " unused bytes at the end of the data section");
  }

  const char* data = raw.data() + data_start;
  if (auto checksum = file.metadata.find(kChecksumKey); checksum != file.metadata.end()) {
    json unchecked = header;
    unchecked[kMetadataKey].erase(kChecksumKey);
    if (checksum->second != full_checksum(unchecked, data, data_size)) {
      fail(path, "checksum mismatch (file corrupted or edited)");
    }
    file.integrity = Integrity::HeaderAndData;
    file.metadata.erase(checksum);
  } else if (auto old = file.metadata.find(kDataChecksumKey); old != file.metadata.end()) {
    if (old->second != crc_text(data, data_size)) fail(path, "checksum mismatch (file corrupted or edited)");
    file.integrity = Integrity::DataOnly;
    file.metadata.erase(old);
  }

  for (TensorEntry& entry : entries) {
    const std::string_view bytes = raw.substr(data_start + entry.begin, entry.end - entry.begin);
    if (keep_mapped && keep_mapped(entry.tensor))
      entry.tensor.view = bytes;
    else
      entry.tensor.bytes = std::string(bytes);
    file.tensors.push_back(std::move(entry.tensor));
  }
  return file;
}

}  // namespace


SafetensorsFile decode_safetensors(const std::string& raw, const std::string& path) { return decode(raw, path, nullptr); }

SafetensorsFile map_safetensors(const std::string& path, const std::function<bool(const StoredTensor&)>& keep_mapped) {
  auto mapping = std::make_shared<const MappedFile>(path);
  SafetensorsFile file = decode(std::string_view(mapping->data(), mapping->size()), path, keep_mapped);
  mapping->release_pages();
  file.mapping = std::move(mapping);
  return file;
}

void require_checksum(const SafetensorsFile& file, const std::string& rebuild_with) {
  if (file.integrity == Integrity::DataOnly) {
    fail(file.path, "was written by imagescore 0.x, whose checksum covers the data but not the header; rebuild it with " +
                        rebuild_with);
  }
  if (file.integrity == Integrity::None) {
    fail(file.path, std::string("has no checksum (the key '") + kChecksumKey +
                        "' is missing: edited, or not written by imagescore); rebuild it with " + rebuild_with);
  }
}

}  // namespace imagescore
