#include "imagescore/core/safetensors.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "imagescore/core/io.hpp"
#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

std::string le64(std::uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[std::size_t(i)] = char((value >> (8 * i)) & 0xff);
  return bytes;
}

// A safetensors file as the public spec describes it: u64 LE header length, JSON, data.
std::string container(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

StoredTensor tensor(const std::string& name, DType dtype, std::vector<std::int64_t> shape, std::string bytes) {
  StoredTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = std::move(bytes);
  return t;
}

SafetensorsFile sample_file() {
  SafetensorsFile file;
  file.metadata = {{"arch", "small_cnn"}, {"note", "quote \" and unicode \xc3\xa9"}};
  file.tensors.push_back(tensor("means", DType::F64, {2, 3}, raw_bytes<double>({1.5, -2.25, 0, 1e300, -1e-300, 3})));
  file.tensors.push_back(tensor("weights", DType::F32, {4}, raw_bytes<float>({0.5f, -1.0f, 3.25f, 1e-30f})));
  file.tensors.push_back(tensor("count", DType::I64, {}, raw_bytes<std::int64_t>({-123456789012345})));
  file.tensors.push_back(tensor("pixels", DType::U8, {3}, std::string("\x00\x7f\xff", 3)));
  file.tensors.push_back(tensor("mask", DType::BOOL, {2, 1}, std::string("\x01\x00", 2)));
  file.tensors.push_back(tensor("empty", DType::F32, {0, 5}, ""));
  return file;
}

TEST(Safetensors, DtypeNamesAndSizes) {
  EXPECT_STREQ(dtype_name(DType::F64), "F64");
  EXPECT_STREQ(dtype_name(DType::F32), "F32");
  EXPECT_STREQ(dtype_name(DType::I64), "I64");
  EXPECT_STREQ(dtype_name(DType::U8), "U8");
  EXPECT_STREQ(dtype_name(DType::BOOL), "BOOL");
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_EQ(dtype_size(DType::U8), 1u);
  EXPECT_EQ(dtype_size(DType::BOOL), 1u);
  EXPECT_EQ(tensor("s", DType::F32, {}, "").numel(), 1u);
  EXPECT_EQ(tensor("m", DType::F32, {2, 3, 4}, "").numel(), 24u);
  EXPECT_EQ(tensor("z", DType::F32, {2, 0}, "").numel(), 0u);
}

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  SafetensorsFile written = sample_file();
  write_safetensors(path, written);
  SafetensorsFile read = read_safetensors(path);

  EXPECT_EQ(read.path, path);
  EXPECT_EQ(read.metadata, written.metadata);  // the checksum entry is the reader's, not the caller's
  EXPECT_EQ(read.integrity, Integrity::HeaderAndData);
  EXPECT_NO_THROW(require_checksum(read, "x"));
  ASSERT_EQ(read.tensors.size(), written.tensors.size());
  for (std::size_t i = 0; i < written.tensors.size(); ++i) {
    SCOPED_TRACE(written.tensors[i].name);
    EXPECT_EQ(read.tensors[i].name, written.tensors[i].name);  // offset order = written order
    EXPECT_EQ(read.tensors[i].dtype, written.tensors[i].dtype);
    EXPECT_EQ(read.tensors[i].shape, written.tensors[i].shape);
    EXPECT_EQ(read.tensors[i].bytes, written.tensors[i].bytes);
  }
  EXPECT_TRUE(read.has("mask"));
  EXPECT_FALSE(read.has("nope"));
  EXPECT_EQ(read.at("count").bytes, raw_bytes<std::int64_t>({-123456789012345}));
  EXPECT_ERROR_CONTAINS(read.at("nope"), path + ": missing tensor nope");
}

TEST(Safetensors, WriterFollowsThePublicLayout) {
  TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  SafetensorsFile file;
  file.tensors.push_back(tensor("b", DType::U8, {2}, "xy"));
  file.tensors.push_back(tensor("a", DType::F32, {1}, raw_bytes<float>({1.0f})));
  write_safetensors(path, file);

  const std::string bytes = read_bytes(path);
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(bytes[std::size_t(i)]);
  EXPECT_EQ(header_size % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + header_size + 6);
  const std::string header = bytes.substr(8, header_size);
  EXPECT_NE(header.back(), '}') << "header should be padded with spaces: " << header;
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));
  // Data laid out in the given order, not sorted by name.
  EXPECT_EQ(bytes.substr(8 + header_size), std::string("xy\x00\x00\x80\x3f", 6));
  nlohmann::json json = nlohmann::json::parse(header);
  EXPECT_EQ(json["b"]["data_offsets"], nlohmann::json({0, 2}));
  EXPECT_EQ(json["a"]["data_offsets"], nlohmann::json({2, 6}));
  EXPECT_EQ(json["a"]["dtype"], "F32");
  EXPECT_EQ(json["a"]["shape"], nlohmann::json({1}));
  // CRC-32 of the canonical header without the checksum, then of the data (zlib.crc32 in
  // Python gives the same).
  EXPECT_EQ(json["__metadata__"]["imagescore.checksum"], "crc32:69f74b2f");
  const std::string canonical =
      R"({"__metadata__":{},"a":{"data_offsets":[2,6],"dtype":"F32","shape":[1]},)"
      R"("b":{"data_offsets":[0,2],"dtype":"U8","shape":[2]}})";
  const std::string data("xy\x00\x00\x80\x3f", 6);
  EXPECT_EQ(crc32_of(data.data(), data.size(), crc32_of(canonical.data(), canonical.size())), 0x69f74b2fu);
}

TEST(Safetensors, ReadsAHandWrittenFile) {
  TempDir dir;
  const std::string path = dir.file("hand.safetensors");
  // Tensors listed in a different order than their data; no checksum, no padding.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},)"
      R"("bias":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("flags":{"dtype":"BOOL","shape":[0],"data_offsets":[24,24]}})";
  const std::string data = std::string("\xfe\xff\xff\xff\xff\xff\xff\xff", 8) +       // I64 -2
                           std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8) +       // F32 1, 2
                           std::string("\x00\x00\x00\xbf\x00\x00\x40\x40", 8);        // F32 -0.5, 3
  write_bytes(path, container(header, data));

  SafetensorsFile file = read_safetensors(path);
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(file.tensors.size(), 3u);
  EXPECT_EQ(file.tensors[0].name, "bias");
  EXPECT_EQ(file.tensors[1].name, "weight");
  EXPECT_EQ(file.tensors[2].name, "flags");
  EXPECT_EQ(file.at("bias").bytes, raw_bytes<std::int64_t>({-2}));
  EXPECT_EQ(file.at("weight").bytes, raw_bytes<float>({1.0f, 2.0f, -0.5f, 3.0f}));
  EXPECT_EQ(file.at("weight").shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(file.at("flags").dtype, DType::BOOL);
  EXPECT_EQ(file.at("flags").numel(), 0u);
}

// Writes `bytes` and expects the reader to refuse it with "<file>: <message>...".
void expect_rejected(const std::string& bytes, const std::string& message) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  EXPECT_ERROR_CONTAINS(read_safetensors(path), path + ": " + message);
}

std::string one_tensor(const std::string& entry, const std::string& data) {
  return container(R"({"t":)" + entry + "}", data);
}

TEST(Safetensors, RejectsAFlippedDataByte) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  write_safetensors(path, sample_file());
  std::string bytes = read_bytes(path);
  bytes[bytes.size() - 10] ^= 0x01;
  write_bytes(path, bytes);
  EXPECT_ERROR_CONTAINS(read_safetensors(path), path + ": checksum mismatch (file corrupted or edited)");
}

// Replaces the first `from` in the file by `to` of the same length (the header length stays).
void edit_in_place(const std::string& path, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string bytes = read_bytes(path);
  const auto at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  bytes.replace(at, from.size(), to);
  write_bytes(path, bytes);
}

TEST(Safetensors, TheChecksumCoversTheHeader) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  write_safetensors(path, sample_file());
  edit_in_place(path, "small_cnn", "small_cxn");
  EXPECT_ERROR_CONTAINS(read_safetensors(path), path + ": checksum mismatch (file corrupted or edited)");
  // A tensor's place in the header is covered too: swapping two names of one size.
  SafetensorsFile two;
  two.tensors = {tensor("aa", DType::U8, {1}, "x"), tensor("bb", DType::U8, {1}, "y")};
  write_safetensors(path, two);
  edit_in_place(path, R"("aa")", R"("cc")");
  EXPECT_ERROR_CONTAINS(read_safetensors(path), path + ": checksum mismatch");
}

TEST(Safetensors, FilesWithoutAWholeFileChecksumAreRefusedWhereRequired) {
  TempDir dir;
  const std::string path = dir.file("old.safetensors");
  const std::string header_start = R"({"__metadata__":{"arch":"small_cnn")";
  const std::string entry = R"("t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  // imagescore 0.x: a CRC of the data only.
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", crc32_of("xy", 2));
  write_bytes(path, container(header_start + R"(,"imagescore.crc32":")" + crc + R"("},)" + entry, "xy"));
  SafetensorsFile old = read_safetensors(path);
  EXPECT_EQ(old.integrity, Integrity::DataOnly);
  EXPECT_EQ(old.metadata, (std::map<std::string, std::string>{{"arch", "small_cnn"}}));
  EXPECT_ERROR_CONTAINS(require_checksum(old, "`imagescore profile`"),
                        path + ": was written by imagescore 0.x, whose checksum covers the data but not the header; "
                               "rebuild it with `imagescore profile`");
  write_bytes(path, container(header_start + R"(,"imagescore.crc32":"00000000"},)" + entry, "xy"));
  EXPECT_ERROR_CONTAINS(read_safetensors(path), path + ": checksum mismatch");

  write_bytes(path, container(header_start + "}," + entry, "xy"));
  SafetensorsFile none = read_safetensors(path);
  EXPECT_EQ(none.integrity, Integrity::None);
  EXPECT_ERROR_CONTAINS(require_checksum(none, "`imagescore train`"),
                        path + ": has no checksum (the key 'imagescore.checksum' is missing: edited, or not written by "
                               "imagescore); rebuild it with `imagescore train`");
}

TEST(Safetensors, RejectsTruncatedFiles) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  write_safetensors(path, sample_file());
  const std::string bytes = read_bytes(path);
  expect_rejected(bytes.substr(0, bytes.size() - 1), "tensor 'empty': data_offsets");
  expect_rejected(bytes.substr(0, 100), "header length");
  expect_rejected(bytes.substr(0, 5), "too short for a safetensors file (5 bytes");
  expect_rejected("", "too short for a safetensors file (0 bytes");
}

TEST(Safetensors, RejectsBadHeaderLengths) {
  expect_rejected(le64(200'000'000) + "{}", "header length 200000000 exceeds the 100 MB limit");
  expect_rejected(le64(~std::uint64_t(0)) + "{}", "header length 18446744073709551615 exceeds the 100 MB limit");
  expect_rejected(le64(3) + "{}", "header length 3 exceeds the file size of 10 bytes");
}

TEST(Safetensors, RejectsBadJson) {
  expect_rejected(container(R"({"t": {"dtype": "F32",)", ""), "invalid JSON header");
  expect_rejected(container("not json", ""), "invalid JSON header");
  expect_rejected(container("[1, 2]", ""), "header is not a JSON object");
  expect_rejected(container(R"({"__metadata__": {"k": 1}})", ""), "__metadata__ value of 'k' is not a string");
  expect_rejected(container(R"({"__metadata__": [1]})", ""), "__metadata__ must be an object of strings");
  expect_rejected(container(R"({"t": 5})", ""), "tensor 't': entry must be an object");
}

TEST(Safetensors, RejectsBadTensorEntries) {
  expect_rejected(one_tensor(R"({"dtype":"F16","shape":[1],"data_offsets":[0,2]})", "ab"),
                  "tensor 't': unknown dtype \"F16\"");
  expect_rejected(one_tensor(R"({"dtype":1,"shape":[1],"data_offsets":[0,1]})", "a"), "tensor 't': unknown dtype 1");
  expect_rejected(one_tensor(R"({"shape":[1],"data_offsets":[0,1]})", "a"), "tensor 't': missing field 'dtype'");
  expect_rejected(one_tensor(R"({"dtype":"U8","shape":[-1],"data_offsets":[0,1]})", "a"),
                  "tensor 't': negative dimension -1");
  expect_rejected(one_tensor(R"({"dtype":"U8","shape":[1.5],"data_offsets":[0,1]})", "a"),
                  "tensor 't': shape must be an array of integers");
  expect_rejected(one_tensor(R"({"dtype":"U8","shape":[4611686018427387904,8],"data_offsets":[0,1]})", "a"),
                  "tensor 't': shape [4611686018427387904, 8] is too large");
  expect_rejected(one_tensor(R"({"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,1]})", "a"),
                  "tensor 't': dimension 9223372036854775808 is too large");
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", "12345678"),
                  "tensor 't': 8 bytes, expected 12 for shape [3] of F32");
  expect_rejected(one_tensor(R"({"dtype":"U8","shape":[1],"data_offsets":[1,0]})", "a"),
                  "tensor 't': data_offsets must be [begin, end] with 0 <= begin <= end");
  expect_rejected(one_tensor(R"({"dtype":"U8","shape":[1],"data_offsets":[-1,0]})", "a"),
                  "tensor 't': data_offsets must be [begin, end] with 0 <= begin <= end, got [-1,0]");
  expect_rejected(one_tensor(R"({"dtype":"U8","shape":[2],"data_offsets":[0,2]})", "a"),
                  "tensor 't': data_offsets [0,2] extend beyond the data section (1 bytes");
}

TEST(Safetensors, RejectsInconsistentOffsets) {
  const std::string u8_pair = R"({"dtype":"U8","shape":[2],"data_offsets":)";
  expect_rejected(container(R"({"a":)" + u8_pair + R"([0,2]},"b":)" + u8_pair + "[1,3]}}", "abc"),
                  "tensor 'b' overlaps tensor 'a'");
  expect_rejected(container(R"({"a":)" + u8_pair + R"([0,2]},"b":)" + u8_pair + "[3,5]}}", "abcde"),
                  "gap in the data section before tensor 'b' (bytes 2..3 unused)");
  expect_rejected(container(R"({"a":)" + u8_pair + R"([0,2]}})", "abc"),
                  "1 unused bytes at the end of the data section");
  expect_rejected(container(R"({"a":)" + u8_pair + R"([0,2]},"a":)" + u8_pair + "[2,4]}}", "abcd"),
                  "duplicate tensor name 'a'");
}

TEST(Safetensors, WriterRefusesInconsistentTensors) {
  TempDir dir;
  const std::string path = dir.file("out.safetensors");
  SafetensorsFile file;
  file.tensors.push_back(tensor("a", DType::F32, {2}, "1234"));
  EXPECT_ERROR_CONTAINS(write_safetensors(path, file), path + ": tensor 'a': 4 bytes, expected 8 for shape [2] of F32");
  file.tensors = {tensor("a", DType::U8, {1}, "x"), tensor("a", DType::U8, {1}, "y")};
  EXPECT_ERROR_CONTAINS(write_safetensors(path, file), path + ": duplicate tensor name 'a'");
  file.tensors = {tensor("a", DType::U8, {-1}, "")};
  EXPECT_ERROR_CONTAINS(write_safetensors(path, file), "tensor 'a': negative dimension in shape [-1]");
  file.tensors = {tensor("__metadata__", DType::U8, {1}, "x")};
  EXPECT_ERROR_CONTAINS(write_safetensors(path, file), "tensor name '__metadata__' is reserved");
  file.tensors.clear();
  file.metadata["imagescore.crc32"] = "00000000";
  EXPECT_ERROR_CONTAINS(write_safetensors(path, file), "metadata key 'imagescore.crc32' is reserved");
  file.metadata = {{"imagescore.checksum", "crc32:00000000"}};
  EXPECT_ERROR_CONTAINS(write_safetensors(path, file), "metadata key 'imagescore.checksum' is reserved");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_ERROR_CONTAINS(write_safetensors(dir.file("missing/out.safetensors"), sample_file()), "does not exist");
}

}  // namespace
}  // namespace imagescore
