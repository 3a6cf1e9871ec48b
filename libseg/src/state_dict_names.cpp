// Python's names for our networks' parameters: one table per registered network.
#include <seg/error.h>
#include <seg/state_dict.h>

#include <map>

namespace seg {

namespace {

// A name that starts with `ours` starts with `python` in Python, the rest kept.
struct Rename {
  const char* ours;
  const char* python;
};

// The notebook's fullyconv (and its wide variant) is one flat nn.Sequential: Conv2d,
// InstanceNorm2d, LeakyReLU four times, then the classifier Conv2d, so its convolutions are
// modules 0, 3, 6, 9 and 12. Ours nests each group in its own Sequential ("0".."3", the conv
// first in each) and registers the classifier as "4".
const std::vector<Rename> kNotebookFullyConv = {
    {"0.0.", "0."}, {"1.0.", "3."}, {"2.0.", "6."}, {"3.0.", "9."}, {"4.", "12."}};
// Our names as they are: the notebook's LightUNet registers the same modules under the same
// names; fast and res-unet have no Python definition but ours.
const std::vector<Rename> kSameNames = {};

struct NameTable {
  const std::vector<Rename>* renames;
  bool notebook;  // the names are the course notebook's
};

const NameTable& table_of(const std::string& architecture) {
  static const std::map<std::string, NameTable> tables = {{"fcn", {&kNotebookFullyConv, true}},
                                                          {"fcn-wide", {&kNotebookFullyConv, true}},
                                                          {"light-unet", {&kSameNames, true}},
                                                          {"fast", {&kSameNames, false}},
                                                          {"res-unet", {&kSameNames, false}}};
  const auto it = tables.find(architecture);
  if (it == tables.end()) throw UsageError("network \"" + architecture + "\" has no table of Python parameter names");
  return it->second;
}

}  // namespace

std::string python_parameter_name(const std::string& architecture, const std::string& name) {
  const auto& renames = *table_of(architecture).renames;
  if (renames.empty()) return name;
  for (const auto& rename : renames) {
    const std::string ours = rename.ours;
    if (name.compare(0, ours.size(), ours) == 0) return rename.python + name.substr(ours.size());
  }
  throw UsageError("network \"" + architecture + "\": its table of Python names lacks \"" + name + "\"");
}

bool has_notebook_names(const std::string& architecture) { return table_of(architecture).notebook; }

}  // namespace seg
