#pragma once
// Errors carry the file (or option) they concern and what to do; tools catch them once in
// their main and print one line.
#include <stdexcept>
#include <string>

namespace seg {

// Bad input: a file that is missing, unreadable, malformed or inconsistent. Exit code 1.
// A JSON library message without its tag, for a user's line: "[json.exception.type_error.302]
// type must be array, but is string" -> "type must be array, but is string".
inline std::string json_reason(const std::exception& e) {
  const std::string what = e.what();
  const auto end = what.rfind("] ", what.find(' '));
  return what.rfind("[json.exception.", 0) == 0 && end != std::string::npos ? what.substr(end + 2) : what;
}

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  // "<path>: <reason>"
  Error(const std::string& path, const std::string& reason)
      : std::runtime_error(path + ": " + reason) {}
};

// A command line that cannot be carried out as given. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace seg
