// Files embedded into the library at build time (src/report/embed_assets.cmake): the
// chart libraries from report/node_modules and the report page's own script and style.
#pragma once

#include <string>
#include <string_view>

namespace imagescore::detail {

// The bytes of an embedded file: vega.min.js, vega-lite.min.js, vega-embed.min.js,
// report.js or report.css.
std::string_view report_asset(const std::string& name);

}  // namespace imagescore::detail
