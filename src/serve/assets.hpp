// The explorer page's own script and style, embedded into the library at build time
// (src/report/embed_assets.cmake with LAYER=serve).
#pragma once

#include <string>
#include <string_view>

namespace imagescore::detail {

// The bytes of an embedded file: app.js or app.css.
std::string_view serve_asset(const std::string& name);

}  // namespace imagescore::detail
