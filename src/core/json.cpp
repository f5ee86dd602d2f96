#include "imagescore/core/json.hpp"

#include <cmath>

#include "imagescore/core/io.hpp"

namespace imagescore {

nlohmann::json parse_json(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line L, column C: ..."
    // or, for a number such as 1e600, "[json.exception.out_of_range.406] number overflow ...".
    std::string message = e.what();
    const auto at = message.find("] ");
    fail(where, "not valid JSON (" + (at == std::string::npos ? message : message.substr(at + 2)) + ")");
  }
}

nlohmann::json read_json_file(const std::string& path, std::uint64_t max_bytes) {
  return parse_json(read_file(path, max_bytes), path);
}

nlohmann::json number_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

}  // namespace imagescore
