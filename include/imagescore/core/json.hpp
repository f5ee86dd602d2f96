// JSON files as every reader of the toolkit reads them: each error names the file (and
// the field), never a bare message of the JSON library.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "imagescore/core/error.hpp"

namespace imagescore {

// Parses JSON text; fails with "<where>: not valid JSON (...)" naming line and column.
nlohmann::json parse_json(const std::string& text, const std::string& where);
// Reads and parses a JSON file of at most max_bytes.
nlohmann::json read_json_file(const std::string& path, std::uint64_t max_bytes = std::uint64_t(1) << 30);

// A finite number, or null for NaN and infinities (JSON has no such numbers).
nlohmann::json number_or_null(double value);

// Whether a JSON value converts to T exactly. nlohmann converts any number to any
// arithmetic type with a plain cast: a float outside an integer type's range is undefined
// behaviour, and a negative or too large integer would wrap.
template <typename T>
bool json_converts_to(const nlohmann::json& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<T>::max());
    if (!value.is_number_integer()) return false;
    const std::int64_t v = value.get<std::int64_t>();
    if constexpr (std::is_unsigned_v<T>)
      return v >= 0 && std::uint64_t(v) <= std::uint64_t(std::numeric_limits<T>::max());
    else
      return v >= std::int64_t(std::numeric_limits<T>::min()) && v <= std::int64_t(std::numeric_limits<T>::max());
  } else if constexpr (std::is_floating_point_v<T>) {
    return value.is_number();
  } else if constexpr (std::is_same_v<T, std::string>) {
    return value.is_string();
  } else {  // std::vector
    return value.is_array() && std::all_of(value.begin(), value.end(), [](const nlohmann::json& item) {
             return json_converts_to<typename T::value_type>(item);
           });
  }
}

// The field `key` of the object `object` as T; fails "<where>: missing field 'key'" or
// "<where>: 'key' has the wrong type (...)".
template <typename T>
T json_field(const nlohmann::json& object, const std::string& key, const std::string& where) {
  if (!object.is_object()) fail(where, "expected a JSON object");
  auto it = object.find(key);
  if (it == object.end()) fail(where, "missing field '" + key + "'");
  if (!json_converts_to<T>(*it)) fail(where, "'" + key + "' has the wrong type (" + it->dump() + ")");
  return it->template get<T>();
}

// The same, with `fallback` where the field is absent.
template <typename T>
T json_field_or(const nlohmann::json& object, const std::string& key, const T& fallback, const std::string& where) {
  if (!object.is_object()) fail(where, "expected a JSON object");
  return object.contains(key) ? json_field<T>(object, key, where) : fallback;
}

}  // namespace imagescore
