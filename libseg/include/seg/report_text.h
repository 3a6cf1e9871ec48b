#pragma once
// How reports write numbers, sizes, counts and lists, so that every report reads alike.
#include <cstdint>
#include <string>
#include <vector>

namespace seg {

// Six significant digits, as a stream writes a double by default: "0.25", "4095", "1e-07".
std::string number_text(double value);

// Sizes say their order once: "256 x 192" and, where a line first gives a size,
// "256 x 192 (height x width)" (kSizeOrder appended).
inline constexpr const char* kSizeOrder = " (height x width)";
std::string size_text(int64_t height, int64_t width);
std::string size_text_with_order(int64_t height, int64_t width);
// "256x192", where a summary line gives many figures.
std::string size_text_compact(int64_t height, int64_t width);

// "1 case", "3 cases".
std::string cases_text(int64_t count);

// "12 KiB" below a mebibyte (rounded up), else "4.2 MiB".
std::string file_size_text(uintmax_t bytes);

// "a, b, c" for {"a", "b", "c"} with separator ", ".
std::string join(const std::vector<std::string>& parts, const std::string& separator);

}  // namespace seg
