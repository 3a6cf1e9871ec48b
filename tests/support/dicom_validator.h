#pragma once
// dicom3tools' dciodvfy, which checks a DICOM object against its IOD, run from tests.
// Tests skip visibly when it is not installed.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace seg::testing {

inline bool have_dciodvfy() { return std::system("command -v dciodvfy > /dev/null 2>&1") == 0; }

// What dciodvfy says about `file`: every line of its report, and the lines that are errors.
struct DciodvfyReport {
  std::string text;
  std::vector<std::string> errors;
};

inline DciodvfyReport run_dciodvfy(const std::filesystem::path& file, const std::filesystem::path& scratch) {
  const auto log = scratch / "dciodvfy.log";
  const std::string command = "dciodvfy '" + file.string() + "' > '" + log.string() + "' 2>&1";
  DciodvfyReport report;
  if (std::system(command.c_str()) == -1) report.errors.push_back("dciodvfy could not be started");
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    report.text += line + "\n";
    if (line.rfind("Error", 0) == 0) report.errors.push_back(line);
  }
  return report;
}

}  // namespace seg::testing

#define SEG_REQUIRE_DCIODVFY()              \
  if (!::seg::testing::have_dciodvfy())     \
  GTEST_SKIP() << "dciodvfy not found (install dicom3tools): skipped"
