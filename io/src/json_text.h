#pragma once
// A JSON report as text. File and case names need not be UTF-8, but JSON must be: their bytes
// that are not become U+FFFD instead of stopping the report.
#include <string>

namespace seg::io::detail {

template <class Json>
std::string json_text(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace seg::io::detail
