// seg-weights: class weights for the cross-entropy loss from the label frequencies of a data
// set's split (the notebook: count^-0.35 over the train split, divided by the mean).
// Built in every configuration: a tensor pack needs no image IO.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/output.h>
#include <seg/fs.h>
#include <seg/weights.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <iomanip>
#include <sstream>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {

int weights(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("weights", err, [&]() -> int {
    CLI::App app{
        "Class weights for the cross-entropy loss from the pixel count of each label over a\n"
        "data set's split: power: count^-p / mean (the notebook: p = 0.35); inverse: the same\n"
        "with p = 1; none: all 1. A class with no pixels gets weight 0. One weight per class of\n"
        "the data set's table, in its order (the network's output channels), as\n"
        "nn.CrossEntropyLoss(weight=...) takes them.",
        "seg-weights"};
    add_max_pixels_option(app);
    std::string data_path, split = "train", mode_name = "power", json_path;
    double power = 0.35;
    int threads = 0;
    app.add_option("--data", data_path, "data set: folder with dataset.json, or a tensor pack (.pth)")->required();
    app.add_option("--split", split, "the split whose labels are counted, or \"all\"")->capture_default_str();
    app.add_option("--mode", mode_name, "power, inverse or none")->capture_default_str();
    app.add_option("--power", power, "p in count^-p (mode power)")->capture_default_str();
    auto* json_option =
        app.add_option("--json", json_path, "JSON to stdout alone (bare --json), or to FILE")->expected(0, 1);
    app.add_option("--threads", threads, "LibTorch threads (default: all cores)");
    bool overwrite = false, skip_missing = false;
    app.add_flag("--overwrite", overwrite, "--json FILE: replace an existing file");
    app.add_flag("--skip-missing", skip_missing, "leave out the cases whose image or label file is missing (counted) instead of stopping");
    if (!parse(app, args, out)) return kOk;
    set_threads(threads);
    const bool want_json = json_option->count() > 0;
    const bool json_to_stdout = want_json && (json_path.empty() || json_path == "-");
    if (want_json && !json_to_stdout) {
      Inputs inputs;
      add_data_set_input(inputs, data_path);
      check_output_file(json_path, inputs, overwrite ? Existing::overwrite : Existing::refuse, "pass --overwrite to replace it");
    }
    const WeightMode mode = parse_weight_mode(mode_name);
    if (mode == WeightMode::power && !(power > 0 && power <= kMaxWeightPower))
      throw UsageError("--power " + std::to_string(power) + ": must be more than 0 and at most " +
                       std::to_string(static_cast<int>(kMaxWeightPower)) + " (0.35 is the notebook's)");

    Dataset data = load_data(data_path, {std::nullopt, true, skip_missing});
    print_data_warnings(data, "weights", err);
    if (!data.labels.defined()) throw Error(data_path, "the data set has no label maps to count");
    if (split != "all") {
      try {
        data = data.subset(split);
      } catch (const UnknownSplit& e) {
        throw Error(std::string(e.what()) + "; choose one with --split, or --split all");
      }
    }
    // One weight per class of the table, in its order (the network's output channels).
    const auto counts_by_value = label_counts(data.labels, data.classes.max_value() + 1);
    std::vector<int64_t> values;
    for (const auto& entry : data.classes.entries) values.push_back(entry.second);
    const auto counts = counts_by_value.index_select(0, torch::tensor(values, torch::kLong));
    const auto w = class_weights(counts, mode, power);
    const auto num_classes = static_cast<int64_t>(values.size());

    if (want_json) {
      nlohmann::json j;
      j["data"] = data_path;
      j["split"] = split;
      j["cases"] = data.size();
      j["left_out"] = data.left_out;
      j["mode"] = mode_name;
      if (mode == WeightMode::power) j["power"] = power;
      j["classes"] = nlohmann::json::array();
      j["counts"] = nlohmann::json::array();
      j["weights"] = nlohmann::json::array();
      j["values"] = values;
      for (int64_t k = 0; k < num_classes; ++k) {
        j["classes"].push_back(data.classes.entries[static_cast<size_t>(k)].first);
        j["counts"].push_back(counts[k].item<int64_t>());
        j["weights"].push_back(w[k].item<double>());
      }
      const std::string text = j.dump(2) + "\n";
      if (json_to_stdout) out << text;
      else write_file_atomically(json_path, text);
      if (json_to_stdout) return kOk;
    }

    out << "class weights (" << mode_name;
    if (mode == WeightMode::power) out << ", p = " << power;
    out << ") from " << data.size() << " case(s) of split " << split << " of " << data_path
        << (data.left_out.empty() ? "" : "; " + left_out_text(data)) << "\n";
    size_t name_width = 5;
    for (const auto& entry : data.classes.entries) name_width = std::max(name_width, entry.first.size());
    out << std::left << std::setw(7) << "value" << std::setw(static_cast<int>(name_width + 2)) << "class"
        << std::right << std::setw(12) << "pixels" << std::setw(10) << "weight" << "\n";
    std::ostringstream list;
    list << std::fixed << std::setprecision(4);
    for (int64_t k = 0; k < num_classes; ++k) {
      const auto& [name, value] = data.classes.entries[static_cast<size_t>(k)];
      out << std::left << std::setw(7) << value << std::setw(static_cast<int>(name_width + 2)) << name << std::right
          << std::setw(12) << counts[k].item<int64_t>() << std::setw(10) << std::fixed << std::setprecision(4)
          << w[k].item<double>() << "\n";
      list << (k ? ", " : "") << w[k].item<double>();
    }
    out << "weights: [" << list.str() << "]\n";
    return kOk;
  });
}

}  // namespace seg::tools
