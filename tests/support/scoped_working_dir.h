#pragma once
// Runs a test in a folder as the working directory, and returns to the old one after.
#include <filesystem>

namespace seg::testing {

class ScopedWorkingDir {
 public:
  explicit ScopedWorkingDir(const std::filesystem::path& folder) : old_(std::filesystem::current_path()) {
    std::filesystem::current_path(folder);
  }
  ~ScopedWorkingDir() { std::filesystem::current_path(old_); }
  ScopedWorkingDir(const ScopedWorkingDir&) = delete;
  ScopedWorkingDir& operator=(const ScopedWorkingDir&) = delete;

 private:
  std::filesystem::path old_;
};

}  // namespace seg::testing
