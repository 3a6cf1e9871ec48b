#pragma once
// Every tool is a function over its arguments (without the program name) and two streams,
// so tests run tools in-process and each binary is a three-line main.
#include <ostream>
#include <string>
#include <vector>

namespace seg::tools {

using Args = std::vector<std::string>;

int convert(const Args& args, std::ostream& out, std::ostream& err);
int inspect(const Args& args, std::ostream& out, std::ostream& err);
int augment(const Args& args, std::ostream& out, std::ostream& err);
int weights(const Args& args, std::ostream& out, std::ostream& err);
int train(const Args& args, std::ostream& out, std::ostream& err);
int segment(const Args& args, std::ostream& out, std::ostream& err);
int evaluate(const Args& args, std::ostream& out, std::ostream& err);

}  // namespace seg::tools
