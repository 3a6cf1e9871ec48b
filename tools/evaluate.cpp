// seg-evaluate: not implemented yet.
#include "common.h"
#include "tools.h"

namespace seg::tools {

int evaluate(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("evaluate", err, [&]() -> int {
    CLI::App app{"seg-evaluate (not implemented yet)", "seg-evaluate"};
    if (!parse(app, args, out)) return kOk;
    err << "seg-evaluate: not implemented yet\n";
    return kUsage;
  });
}

}  // namespace seg::tools
