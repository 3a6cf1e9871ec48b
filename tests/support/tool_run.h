#pragma once
// Running a tool in-process and capturing what it prints (shared by the tool tests).
#include <sstream>
#include <string>

#include "tools.h"

namespace seg::testing {

struct ToolResult {
  int code;
  std::string out, err;
};

template <typename Tool>
ToolResult run_tool_in_process(Tool tool, const seg::tools::Args& args) {
  std::ostringstream out, err;
  const int code = tool(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace seg::testing
