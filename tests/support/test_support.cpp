#include "test_support.h"

#include <algorithm>
#include <cstdlib>
#include <random>

namespace seg::testing {

std::optional<std::filesystem::path> jsrt_dir() {
  std::filesystem::path dir = SEG_DEFAULT_DATA_DIR;
  if (const char* env = std::getenv("SEG_DATA_DIR"); env && *env) dir = env;
  if (std::filesystem::exists(dir / "dataset.json")) return dir;
  return std::nullopt;
}

ScratchDir::ScratchDir(const std::string& tag) {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          (tag + "-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> list_files(const std::filesystem::path& dir) {
  std::vector<std::string> files;
  if (!std::filesystem::exists(dir)) return files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(std::filesystem::relative(entry.path(), dir).string());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace seg::testing
