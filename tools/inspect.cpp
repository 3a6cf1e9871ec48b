// seg-inspect: not implemented yet.
#include "common.h"
#include "tools.h"

namespace seg::tools {

int inspect(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("inspect", err, [&]() -> int {
    CLI::App app{"seg-inspect (not implemented yet)", "seg-inspect"};
    if (!parse(app, args, out)) return kOk;
    err << "seg-inspect: not implemented yet\n";
    return kUsage;
  });
}

}  // namespace seg::tools
