#pragma once
// What every tool shares: exit codes, one-line errors, CLI11 parsing of an argument vector.
#include <CLI/CLI.hpp>
#include <seg/dataset.h>
#include <seg/postprocess.h>
#include <seg/report_text.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace seg::tools {

enum ExitCode { kOk = 0, kBadInput = 1, kUsage = 2 };

// Runs `body` and turns what it throws into "seg-<tool>: error: <message>" on err and
// the exit code: seg::Error -> 1, seg::UsageError / CLI::ParseError -> 2, anything else -> 1.
int run_tool(const std::string& tool, std::ostream& err, const std::function<int()>& body);

// Parses args (in order, without the program name) into app. Returns true when the tool
// should go on; false after --help or --version was printed to out (exit 0).
// Parse errors throw seg::UsageError with CLI11's message and a hint to --help.
bool parse(CLI::App& app, const std::vector<std::string>& args, std::ostream& out);

// Adds --max-pixels N: the most pixels (height x width) an input image may declare; larger
// files are refused before they are read. Every image this run reads obeys it, and a run
// without the option gets the default (io::kDefaultMaxPixels).
void add_max_pixels_option(CLI::App& app);

// Threads for LibTorch's intra-op pool: `requested` if > 0, else the machine's cores shared
// out among the processes that run on it.
void set_threads(int requested, int processes_on_machine = 1);

// True when `stream` is std::cout, std::cerr or seg::tool_messages() (what the binaries write
// messages to) attached to a terminal: progress lines only go to a terminal.
bool is_terminal(const std::ostream& stream);

// "a, b, c" for {"a", "b", "c"} with separator ", ".

// "UNDER:OVER" (--overlap: class names or label values of `classes`) -> the overlap; throws
// UsageError for a malformed pair or an unknown class.
Overlap parse_overlap(const std::string& text, const ClassTable& classes);

}  // namespace seg::tools
