#pragma once
// Shared by the test binaries: where the real data is, scratch folders, running a tool.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace seg::testing {

// The JSRT folder (SEG_DATA_DIR, else ../shared/data/jsrt beside the checkout), or nullopt
// when it is not there. Use SEG_REQUIRE_JSRT() in a test to skip visibly.
std::optional<std::filesystem::path> jsrt_dir();

// A fresh empty folder under the system temp dir, removed when the object dies.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag = "segtest");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Files (recursively) under dir, relative, sorted: to assert "nothing half written".
std::vector<std::string> list_files(const std::filesystem::path& dir);

}  // namespace seg::testing

#define SEG_REQUIRE_JSRT(var)                                                      \
  auto var##_opt = ::seg::testing::jsrt_dir();                                     \
  if (!var##_opt) GTEST_SKIP() << "JSRT data not found (set SEG_DATA_DIR): skipped"; \
  const std::filesystem::path var = *var##_opt
