#include "common.h"

#include <seg/error.h>
#include <seg/fs.h>
#include <seg/postprocess.h>
#include <torch/torch.h>
#if SEG_WITH_IMAGE_IO
#include <seg/io/image_header.h>
#endif

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

namespace seg::tools {

namespace {
// An error is one line: control characters in it (a newline in a file name) are shown escaped.
std::string one_line(const std::string& message) {
  static const char* hex = "0123456789abcdef";
  std::string line;
  for (const char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') line += "\\n";
    else if (c == '\t') line += "\\t";
    else if (byte < 0x20 || byte == 0x7f) line += std::string("\\x") + hex[byte >> 4] + hex[byte & 15];
    else line += c;
  }
  return line;
}
}  // namespace

int run_tool(const std::string& tool, std::ostream& err, const std::function<int()>& body) {
  const std::string prefix = "seg-" + tool + ": error: ";
  try {
    return body();
  } catch (const seg::UsageError& e) {
    err << prefix << one_line(e.what()) << "\n";
    return kUsage;
  } catch (const CLI::ParseError& e) {
    err << prefix << one_line(e.what()) << " (see --help)\n";
    return kUsage;
  } catch (const seg::Error& e) {
    err << prefix << one_line(e.what()) << "\n";
    return kBadInput;
  } catch (const c10::Error& e) {
    // LibTorch's messages carry a C++ backtrace; the first line is what a user needs.
    std::string message = e.what_without_backtrace();
    message = message.substr(0, message.find('\n'));
    err << prefix << one_line(message) << "\n";
    return kBadInput;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the file system refused where no reader had a word for it: the path and its reason.
    const std::string path = e.path1().empty() ? std::string() : e.path1().string() + ": ";
    const std::string advice = e.code() == std::errc::filename_too_long ? "; give a shorter name" : "; check the path";
    err << prefix << one_line(path + e.code().message() + advice) << "\n";
    return kBadInput;
  } catch (const std::exception& e) {
    err << prefix << one_line(e.what()) << "\n";
    return kBadInput;
  }
}

bool parse(CLI::App& app, const std::vector<std::string>& args, std::ostream& out) {
  // Every tool answers --version with the suite's version (help2man reads it for the man page).
  app.set_version_flag("--version", app.get_name() + " " + SEG_VERSION);
  // CLI11 consumes a vector from the back.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return false;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return false;
  } catch (const CLI::CallForVersion& e) {
    out << e.what() << "\n";
    return false;
  } catch (const CLI::ParseError& e) {
    // CLI11 reports a missing required option before an unknown one; the unknown one (often
    // a typo of the option meant) is the more useful news.
    for (const auto& arg : args) {
      if (arg == "--") break;
      if (arg.rfind("--", 0) != 0 || arg.size() < 3) continue;
      const std::string name = arg.substr(0, arg.find('='));
      if (name != "--help" && name != "--help-all" && name != "--version" && app.get_option_no_throw(name) == nullptr)
        throw seg::UsageError("unknown option " + name + " (see " + app.get_name() + " --help)");
    }
    throw seg::UsageError(std::string(e.what()) + " (see " + app.get_name() + " --help)");
  }
  return true;
}

void add_max_pixels_option(CLI::App& app) {
#if SEG_WITH_IMAGE_IO
  // Tools run in-process one after another (tests): each run starts from the default.
  io::set_default_read_limits({io::kDefaultMaxPixels});
#endif
  const auto apply = [](const int64_t& pixels) {
    if (pixels < 1) throw UsageError("--max-pixels " + std::to_string(pixels) + ": give a number of pixels of at least 1");
#if SEG_WITH_IMAGE_IO
    io::set_default_read_limits({pixels});
#endif
  };
  app.add_option_function<int64_t>("--max-pixels", apply,
                                   "refuse input images that declare more than N pixels (height x width; default "
                                   "67108864 = 2^26)")
      ->type_name("N");
}

void set_threads(int requested, int processes_on_machine) {
  int threads = requested > 0 ? requested
                              : static_cast<int>(std::thread::hardware_concurrency()) / std::max(processes_on_machine, 1);
  if (threads < 1) threads = 1;
  torch::set_num_threads(threads);
}

bool is_terminal(const std::ostream& stream) {
  if (&stream == &std::cout) return isatty(STDOUT_FILENO) != 0;
  if (&stream == &std::cerr) return isatty(STDERR_FILENO) != 0;
  if (&stream == &seg::tool_messages()) return seg::tool_messages_on_terminal();
  return false;
}

Overlap parse_overlap(const std::string& text, const ClassTable& classes) {
  const auto colon = text.find(':');
  auto value_of = [&](const std::string& part) -> int {
    for (const auto& [name, value] : classes.entries)
      if (part == name || part == std::to_string(value)) return value;
    std::vector<std::string> names;
    for (const auto& entry : classes.entries) names.push_back(entry.first);
    throw UsageError("--overlap " + text + ": \"" + part + "\" is not one of the classes (" + join(names, ", ") +
                     "; or their label values)");
  };
  if (colon == std::string::npos)
    throw UsageError("--overlap " + text + ": use UNDER:OVER, for example right_lung:right_clavicle or 1:4");
  return {value_of(text.substr(0, colon)), value_of(text.substr(colon + 1))};
}

}  // namespace seg::tools
