#include <seg/report_text.h>

#include <iomanip>
#include <sstream>

namespace seg {

std::string number_text(double value) {
  std::ostringstream text;
  text << std::setprecision(6) << value;
  return text.str();
}

std::string size_text(int64_t height, int64_t width) { return std::to_string(height) + " x " + std::to_string(width); }

std::string size_text_with_order(int64_t height, int64_t width) { return size_text(height, width) + kSizeOrder; }

std::string size_text_compact(int64_t height, int64_t width) {
  return std::to_string(height) + "x" + std::to_string(width);
}

std::string cases_text(int64_t count) { return std::to_string(count) + (count == 1 ? " case" : " cases"); }

std::string file_size_text(uintmax_t bytes) {
  std::ostringstream text;
  if (bytes < (1u << 20))
    text << (bytes + 1023) / 1024 << " KiB";
  else
    text << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1u << 20) << " MiB";
  return text.str();
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? separator : "") + parts[i];
  return text;
}

}  // namespace seg
