// seg-convert: not implemented yet.
#include "common.h"
#include "tools.h"

namespace seg::tools {

int convert(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("convert", err, [&]() -> int {
    CLI::App app{"seg-convert (not implemented yet)", "seg-convert"};
    if (!parse(app, args, out)) return kOk;
    err << "seg-convert: not implemented yet\n";
    return kUsage;
  });
}

}  // namespace seg::tools
