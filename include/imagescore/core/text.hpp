// Numbers and text as every reader and writer of the toolkit formats and parses them:
// locale-independent, exact where a number is written to be read back.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <system_error>

namespace imagescore {

// Shortest decimal text that reads back to the same double ("%.17g" trimmed).
std::string format_double(double value);

// A number for tables: `decimals` digits after the point, "-" for NaN.
std::string fixed(double value, int decimals);

// A memory or file size for messages: "N bytes" below a MiB, whole MiB above, so that a
// small limit reads as what it is.
std::string format_bytes(std::uint64_t bytes);

// A CSV field as the toolkit writes it: quoted (RFC 4180) when it contains a comma, a
// quote or a line break, unchanged otherwise.
std::string csv_field(const std::string& text);

// Whole-field number parsing, independent of the locale: false unless all of `text` is
// one number of type Number (no sign for unsigned types, no spaces).
template <typename Number>
bool parse_number(const std::string& text, Number& value) {
  const char* end = text.data() + text.size();
  auto result = std::from_chars(text.data(), end, value);
  return !text.empty() && result.ec == std::errc() && result.ptr == end;
}

}  // namespace imagescore
