#pragma once
// Loading a data set for a tool: a folder with dataset.json (needs the image layer) or a
// tensor pack (works in every build).
#include <seg/dataset.h>
#include <seg/output.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

namespace seg::tools {

struct DataRequest {
  std::optional<std::pair<int64_t, int64_t>> size;  // resample every case to H x W
  bool require_labels = true;
  bool skip_missing = false;  // leave out the cases whose files are missing (Dataset::left_out)
};

// Throws seg::Error naming the path when it cannot be read, and explains when a folder is
// given to a build without image IO.
Dataset load_data(const std::string& path, const DataRequest& request = {});

// Prints what reading the data set found odd (Dataset::warnings), once each, as
// "seg-<tool>: warning: <source>: <warning>".
void print_data_warnings(const Dataset& data, const std::string& tool, std::ostream& err);

// "2 cases left out for missing files (b, c)" for a summary line, or "" when none was.
std::string left_out_text(const Dataset& data);

// "256" -> (256, 256); "256x192" -> (256, 192) as H x W; seg::UsageError otherwise.
std::pair<int64_t, int64_t> parse_size(const std::string& text);

// Adds a path a tool reads to its inputs. A data set (its folder or its dataset.json) adds its
// folder, its dataset.json and every image and label file it names, wherever its patterns
// point: an output may be none of them, however the data set was named.
void add_data_set_input(Inputs& inputs, const std::string& path);

}  // namespace seg::tools
