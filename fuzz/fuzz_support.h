#pragma once
// Scratch files for the fuzz targets (fuzz_targets.h, fuzz_image_header.h): readers take
// paths, so each input goes to a file in a private folder.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace seg::fuzz {

// A private folder for this process's scratch files.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("seg-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_input(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = scratch() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

template <typename F>
void expect_rejection_or_success(F&& body) {
  try {
    body();
  } catch (const std::exception&) {
  }
}

}  // namespace seg::fuzz
