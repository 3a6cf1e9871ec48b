// seg-segment: not implemented yet.
#include "common.h"
#include "tools.h"

namespace seg::tools {

int segment(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("segment", err, [&]() -> int {
    CLI::App app{"seg-segment (not implemented yet)", "seg-segment"};
    if (!parse(app, args, out)) return kOk;
    err << "seg-segment: not implemented yet\n";
    return kUsage;
  });
}

}  // namespace seg::tools
