// seg-train: not implemented yet.
#include "common.h"
#include "tools.h"

namespace seg::tools {

int train(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("train", err, [&]() -> int {
    CLI::App app{"seg-train (not implemented yet)", "seg-train"};
    if (!parse(app, args, out)) return kOk;
    err << "seg-train: not implemented yet\n";
    return kUsage;
  });
}

}  // namespace seg::tools
