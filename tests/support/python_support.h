#pragma once
// Runs Debian's Python (the one with torch and PIL) from tests, to make and check files the
// way the course notebook and PIL do. Tests skip visibly when it is not there.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace seg::testing {

inline const char* kSystemPython = "/usr/bin/python3";

// Runs `script` with /usr/bin/python3; true when it exits with 0.
inline bool run_python(const std::string& script, const std::filesystem::path& scratch) {
  const auto file = scratch / "script.py";
  std::ofstream(file) << script;
  const std::string command = std::string(kSystemPython) + " " + file.string() + " > " +
                              (scratch / "python.log").string() + " 2>&1";
  return std::system(command.c_str()) == 0;
}

// Whether /usr/bin/python3 imports `modules` ("torch", "PIL, numpy").
inline bool python_has(const std::string& modules) {
  const std::string command = std::string(kSystemPython) + " -c 'import " + modules + "' > /dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

}  // namespace seg::testing

#define SEG_REQUIRE_PYTHON(modules)                                                          \
  if (!::seg::testing::python_has(modules))                                                  \
  GTEST_SKIP() << "/usr/bin/python3 cannot import " modules " (install python3-torch, "      \
                  "python3-pil, python3-numpy): skipped"
