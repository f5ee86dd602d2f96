// The names of an enumeration's values, for one parse and one print per enumeration.
#pragma once

#include <cstddef>
#include <string>

#include "imagescore/core/error.hpp"

namespace imagescore {

template <typename Enum>
struct EnumName {
  Enum value;
  const char* name;
};

// The value called `text`; fails_option(field, "unknown <noun> 'x' (expected a, b or c)"),
// the noun being the field's name unless given.
template <typename Enum, std::size_t N>
Enum enum_from_name(const EnumName<Enum> (&names)[N], const std::string& text, const std::string& field,
                    const std::string& noun = "") {
  for (const auto& entry : names)
    if (text == entry.name) return entry.value;
  std::string expected;
  for (std::size_t i = 0; i < N; ++i) expected += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + names[i].name;
  fail_option(field, "unknown " + (noun.empty() ? field : noun) + " '" + text + "' (expected " + expected + ")");
}

// The name of `value` (every value has one in its table).
template <typename Enum, std::size_t N>
std::string enum_name(const EnumName<Enum> (&names)[N], Enum value) {
  for (const auto& entry : names)
    if (entry.value == value) return entry.name;
  return "?";
}

}  // namespace imagescore
