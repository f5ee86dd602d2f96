#include "imagescore/core/text.hpp"

#include <cmath>
#include <cstdio>

namespace imagescore {

std::string format_double(double value) {
  char buf[32];
  std::string text;
  for (int precision = 15; precision <= 17; ++precision) {
    auto written = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::general, precision);
    text.assign(buf, written.ptr);
    double back = 0;
    if (parse_number(text, back) && back == value) break;
  }
  return text;
}

std::string fixed(double value, int decimals) {
  if (std::isnan(value)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string format_bytes(std::uint64_t bytes) {
  return bytes < (std::uint64_t(1) << 20) ? std::to_string(bytes) + " bytes" : std::to_string(bytes >> 20) + " MiB";
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

}  // namespace imagescore
