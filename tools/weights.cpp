// seg-weights: not implemented yet.
#include "common.h"
#include "tools.h"

namespace seg::tools {

int weights(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("weights", err, [&]() -> int {
    CLI::App app{"seg-weights (not implemented yet)", "seg-weights"};
    if (!parse(app, args, out)) return kOk;
    err << "seg-weights: not implemented yet\n";
    return kUsage;
  });
}

}  // namespace seg::tools
