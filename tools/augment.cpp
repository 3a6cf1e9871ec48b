// seg-augment: not implemented yet.
#include "common.h"
#include "tools.h"

namespace seg::tools {

int augment(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("augment", err, [&]() -> int {
    CLI::App app{"seg-augment (not implemented yet)", "seg-augment"};
    if (!parse(app, args, out)) return kOk;
    err << "seg-augment: not implemented yet\n";
    return kUsage;
  });
}

}  // namespace seg::tools
