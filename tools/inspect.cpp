// seg-inspect: what a file or data set holds (sizes, types, intensities, labels, splits),
// with warnings for anything odd, as text or JSON, and an overlay picture of one case.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/quality.h>
#include <seg/model_search.h>
#include <seg/models.h>
#include <seg/output.h>
#include <seg/viz/overlay.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "common.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// Running intensity statistics over many images.
struct IntensityStats {
  double min = INFINITY, max = -INFINITY, sum = 0, sum_of_squares = 0;
  int64_t count = 0;
  void add(const at::Tensor& pixels) {
    const auto values = pixels.to(at::kDouble);
    min = std::min(min, values.min().item<double>());
    max = std::max(max, values.max().item<double>());
    sum += values.sum().item<double>();
    sum_of_squares += (values * values).sum().item<double>();
    count += values.numel();
  }
  double mean() const { return count ? sum / static_cast<double>(count) : 0; }
  double std() const {
    if (!count) return 0;
    return std::sqrt(std::max(0.0, sum_of_squares / static_cast<double>(count) - mean() * mean()));
  }
  ordered_json to_json() const {
    return {{"min", min}, {"max", max}, {"mean", mean()}, {"std", std()}};
  }
};

// Pixel counts per label value 0..255.
struct LabelHistogram {
  std::vector<int64_t> counts = std::vector<int64_t>(256, 0);
  void add(const at::Tensor& labels) {
    const auto c = at::bincount(labels.flatten().to(at::kLong), {}, 256);
    for (int v = 0; v < 256; ++v) counts[static_cast<size_t>(v)] += c[v].item<int64_t>();
  }
  int64_t total() const {
    int64_t t = 0;
    for (auto c : counts) t += c;
    return t;
  }
};

std::string number(double value) {
  std::ostringstream s;
  s << std::setprecision(6) << value;
  return s.str();
}

// Sizes say their order: "256 x 192 (height x width)".
constexpr const char* kSizeOrder = " (height x width)";
std::string shape_text(int64_t height, int64_t width) { return std::to_string(height) + " x " + std::to_string(width); }
std::string sized_text(int64_t height, int64_t width) { return shape_text(height, width) + kSizeOrder; }
std::string cases_text(int64_t n) { return std::to_string(n) + (n == 1 ? " case" : " cases"); }

// Everything a data set report says.
struct DatasetReport {
  std::string name, kind, source, description;
  std::vector<std::string> cases;
  std::vector<std::pair<std::string, int64_t>> splits;  // in the order of their first case
  ClassTable classes;
  std::map<std::pair<int64_t, int64_t>, int64_t> sizes;  // (height, width) -> number of cases
  std::map<std::string, int64_t> pixel_types;             // stored type -> number of cases
  int64_t labelled = 0;
  IntensityStats intensity;
  LabelHistogram histogram;
  std::vector<std::string> warnings;
};

void order_splits(DatasetReport& report, const std::map<std::string, std::vector<std::string>>& splits) {
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < report.cases.size(); ++i) position.emplace(report.cases[i], i);
  std::vector<std::tuple<size_t, std::string, int64_t>> ordered;
  for (const auto& [name, cs] : splits) {
    size_t first = report.cases.size();
    for (const auto& c : cs) first = std::min(first, position.count(c) ? position[c] : first);
    ordered.emplace_back(first, name, static_cast<int64_t>(cs.size()));
  }
  std::sort(ordered.begin(), ordered.end());
  for (const auto& [first, name, n] : ordered) report.splits.emplace_back(name, n);

  std::map<std::string, int> memberships;
  for (const auto& [name, cs] : splits)
    for (const auto& c : cs) ++memberships[c];
  int64_t in_no_split = 0, in_several = 0;
  for (const auto& c : report.cases) {
    const int m = memberships.count(c) ? memberships[c] : 0;
    in_no_split += m == 0;
    in_several += m > 1;
  }
  if (in_no_split) report.warnings.push_back(std::to_string(in_no_split) + " cases are in no split");
  if (in_several) report.warnings.push_back(std::to_string(in_several) + " cases are in more than one split");
}

void finish_label_warnings(DatasetReport& report) {
  for (int v = 0; v < 256; ++v) {
    const auto n = report.histogram.counts[static_cast<size_t>(v)];
    if (n > 0 && !report.classes.contains(v))
      report.warnings.push_back("label value " + std::to_string(v) + " (" + std::to_string(n) +
                                " pixels) is not in the class table");
  }
  if (report.labelled > 0)
    for (const auto& [name, value] : report.classes.entries)
      if (report.histogram.counts[static_cast<size_t>(std::clamp(value, 0, 255))] == 0)
        report.warnings.push_back("class " + name + " (" + std::to_string(value) + ") has no pixels in any label map");
  if (report.sizes.size() > 1) {
    std::string list;
    for (const auto& [size, n] : report.sizes)
      list += (list.empty() ? "" : ", ") + shape_text(size.first, size.second) + " (" + cases_text(n) + ")";
    report.warnings.push_back("image sizes differ" + std::string(kSizeOrder) + ": " + list +
                              "; give \"size\" in dataset.json and every case is resampled to it, or resample with "
                              "seg-convert --size");
  }
  if (const auto mix = pixel_type_mix_warning(report.pixel_types); !mix.empty()) report.warnings.push_back(mix);
}

// A folder is scanned case by case, so a broken case becomes a warning rather than the end.
DatasetReport scan_folder(const fs::path& json_path) {
  const DatasetSpec spec = DatasetSpec::read(json_path);
  const fs::path root = json_path.parent_path();
  DatasetReport report;
  report.name = spec.name;
  report.kind = "data set folder";
  report.source = root.string();
  report.description = spec.description;
  report.cases = spec.cases;
  report.classes = spec.classes;
  report.warnings = spec.warnings;
  order_splits(report, spec.splits);
  std::vector<std::string> missing_labels;
  for (const auto& c : spec.cases) {
    const fs::path image_path = spec.image_path(root, c);
    std::optional<Image> image;
    try {
      image = io::read_image(image_path);
      report.sizes[{image->height(), image->width()}]++;
      report.pixel_types[image->pixel_type]++;
      report.intensity.add(image->pixels);
      if (!spec.size.empty() && (image->height() != spec.size[0] || image->width() != spec.size[1]))
        report.warnings.push_back(image_path.string() + " is " + sized_text(image->height(), image->width()) +
                                  ", not the stated size " + shape_text(spec.size[0], spec.size[1]) +
                                  "; the tools resample it to that size");
    } catch (const Error& e) {
      report.warnings.push_back(e.what());
    }
    if (spec.labels_pattern.empty()) continue;
    const fs::path label_path = spec.label_path(root, c);
    if (!fs::exists(label_path)) {
      missing_labels.push_back(c);
      continue;
    }
    try {
      const Image labels = io::read_label_map(label_path);
      ++report.labelled;
      report.histogram.add(labels.pixels);
      if (image && (labels.height() != image->height() || labels.width() != image->width()))
        report.warnings.push_back(label_path.string() + " is " + sized_text(labels.height(), labels.width()) +
                                  " but its image is " + shape_text(image->height(), image->width()));
    } catch (const Error& e) {
      report.warnings.push_back(e.what());
    }
  }
  if (spec.labels_pattern.empty()) report.warnings.push_back("the data set has no label maps (no \"labels\" pattern)");
  if (!missing_labels.empty())
    report.warnings.push_back(std::to_string(missing_labels.size()) + " cases have no label map (first: " +
                              missing_labels.front() + ", expected " + spec.label_path(root, missing_labels.front()).string() + ")");
  finish_label_warnings(report);
  return report;
}

DatasetReport scan_pack(const fs::path& path) {
  const Dataset data = load_tensor_pack(path);
  DatasetReport report;
  report.name = data.name;
  report.kind = "tensor pack";
  report.source = path.string();
  report.description = data.description;
  report.cases = data.cases;
  report.classes = data.classes;
  order_splits(report, data.splits);
  report.sizes[{data.images.size(1), data.images.size(2)}] = data.size();
  report.pixel_types[stored_pixel_type(data.images)] = data.size();
  report.intensity.add(data.images);
  if (data.labels.defined()) {
    report.labelled = data.size();
    report.histogram.add(data.labels);
  } else {
    report.warnings.push_back("the tensor pack holds no label maps");
  }
  finish_label_warnings(report);
  return report;
}

ordered_json histogram_json(const LabelHistogram& histogram, const ClassTable& classes) {
  ordered_json list = ordered_json::array();
  const double total = static_cast<double>(std::max<int64_t>(1, histogram.total()));
  for (int v = 0; v < 256; ++v) {
    const auto n = histogram.counts[static_cast<size_t>(v)];
    if (n == 0 && !classes.contains(v)) continue;
    list.push_back({{"value", v}, {"class", classes.name_of(v)}, {"pixels", n}, {"fraction", static_cast<double>(n) / total}});
  }
  return list;
}

void print_histogram(std::ostream& out, const LabelHistogram& histogram, const ClassTable& classes) {
  const double total = static_cast<double>(std::max<int64_t>(1, histogram.total()));
  out << "labels:\n";
  for (int v = 0; v < 256; ++v) {
    const auto n = histogram.counts[static_cast<size_t>(v)];
    if (n == 0 && !classes.contains(v)) continue;
    out << "  " << std::setw(3) << v << "  " << std::left << std::setw(16) << classes.name_of(v) << std::right
        << std::setw(12) << n << "  " << std::fixed << std::setprecision(2) << std::setw(6)
        << 100.0 * static_cast<double>(n) / total << " %" << std::defaultfloat << "\n";
  }
}

void print_dataset(std::ostream& out, const DatasetReport& r, bool as_json) {
  if (as_json) {
    ordered_json j;
    j["name"] = r.name;
    j["kind"] = r.kind;
    j["source"] = r.source;
    if (!r.description.empty()) j["description"] = r.description;
    j["cases"] = r.cases.size();
    j["labelled_cases"] = r.labelled;
    j["splits"] = ordered_json::object();
    for (const auto& [name, n] : r.splits) j["splits"][name] = n;
    j["classes"] = ordered_json::array();
    for (const auto& [name, value] : r.classes.entries) j["classes"].push_back({{"name", name}, {"value", value}});
    j["image_sizes"] = ordered_json::array();
    for (const auto& [size, n] : r.sizes) j["image_sizes"].push_back({{"height", size.first}, {"width", size.second}, {"cases", n}});
    j["pixel_types"] = ordered_json::object();
    for (const auto& [type, n] : r.pixel_types) j["pixel_types"][type] = n;
    j["intensity"] = r.intensity.to_json();
    j["labels"] = histogram_json(r.histogram, r.classes);
    j["warnings"] = r.warnings;
    out << j.dump(2) << "\n";
    return;
  }
  out << r.name << " (" << r.kind << " " << r.source << ")\n";
  if (!r.description.empty()) out << "description: " << r.description << "\n";
  out << "cases: " << r.cases.size() << " (" << r.labelled << " with label maps)\n";
  out << "splits:";
  for (const auto& [name, n] : r.splits) out << " " << name << " " << n;
  out << (r.splits.empty() ? " none\n" : "\n");
  out << "classes: " << r.classes.size() << " (";
  for (size_t i = 0; i < r.classes.entries.size(); ++i)
    out << (i ? ", " : "") << r.classes.entries[i].second << " " << r.classes.entries[i].first;
  out << ")\n";
  out << "image size:";
  for (auto it = r.sizes.begin(); it != r.sizes.end(); ++it)
    out << (it == r.sizes.begin() ? " " : "; ") << shape_text(it->first.first, it->first.second)
        << (it == r.sizes.begin() ? kSizeOrder : "") << ", " << cases_text(it->second);
  out << "\npixel type:";
  for (auto it = r.pixel_types.begin(); it != r.pixel_types.end(); ++it)
    out << (it == r.pixel_types.begin() ? " " : "; ") << it->first << ", " << cases_text(it->second);
  out << "\nintensity: min " << number(r.intensity.min) << ", max " << number(r.intensity.max) << ", mean "
      << number(r.intensity.mean()) << ", std " << number(r.intensity.std()) << "\n";
  if (r.labelled > 0) print_histogram(out, r.histogram, r.classes);
  if (r.warnings.empty()) out << "warnings: none\n";
  for (const auto& w : r.warnings) out << "warning: " << w << "\n";
}

// A lone label map has no class names: 0 is background, the rest label_<v>.
ClassTable background_only() {
  ClassTable table;
  table.entries.emplace_back("background", 0);
  return table;
}

void print_image(std::ostream& out, const fs::path& path, const Image& image, bool as_labels, bool as_json) {
  IntensityStats stats;
  stats.add(image.pixels);
  // Integer images with few values are shown as label maps too.
  std::optional<LabelHistogram> histogram;
  const bool integer = !image.pixels.is_floating_point();
  if (as_labels || (integer && stats.min >= 0 && stats.max <= 255 &&
                    std::get<0>(at::_unique(image.pixels.flatten())).numel() <= 32)) {
    histogram.emplace();
    histogram->add(image.pixels);
  }
  const auto& g = image.geometry;
  if (as_json) {
    ordered_json j;
    j["file"] = path.string();
    j["kind"] = as_labels ? "label map" : "image";
    j["size"] = {image.height(), image.width()};
    j["size_order"] = "HxW";
    j["channels"] = image.channels();
    j["pixel_type"] = image.pixel_type;
    if (g.has_spacing) {
      j["spacing"] = g.spacing;
      j["origin"] = g.origin;
      j["direction"] = g.direction;
    } else {
      j["spacing"] = nullptr;
    }
    j["intensity"] = stats.to_json();
    if (histogram) j["labels"] = histogram_json(*histogram, background_only());
    out << j.dump(2) << "\n";
    return;
  }
  out << path.string() << " (" << (as_labels ? "label map" : "image") << ")\n";
  out << "size: " << sized_text(image.height(), image.width()) << "\n";
  out << "pixel type: " << image.pixel_type << "\n";
  if (g.has_spacing) {
    out << "spacing: " << number(g.spacing[0]) << " x " << number(g.spacing[1]) << " mm\n";
    out << "origin: " << number(g.origin[0]) << ", " << number(g.origin[1]) << "\n";
    out << "direction: " << number(g.direction[0]) << " " << number(g.direction[1]) << " / " << number(g.direction[2])
        << " " << number(g.direction[3]) << "\n";
  } else {
    out << "spacing: none (the format stores no physical spacing)\n";
  }
  out << "intensity: min " << number(stats.min) << ", max " << number(stats.max) << ", mean " << number(stats.mean())
      << ", std " << number(stats.std()) << "\n";
  if (histogram) print_histogram(out, *histogram, background_only());
}

struct OverlayRequest {
  fs::path output;
  std::string case_id;
  std::string label_map;
};

// The image and label map of one case of a data set (default: its first case).
std::tuple<Image, at::Tensor, ClassTable, std::string> dataset_case(const fs::path& path, const std::string& wanted) {
  if (fs::is_directory(path) || path.extension() == ".json") {
    const fs::path json_path = fs::is_directory(path) ? path / "dataset.json" : path;
    const DatasetSpec spec = DatasetSpec::read(json_path);
    const std::string c = wanted.empty() ? spec.cases.front() : wanted;
    if (std::find(spec.cases.begin(), spec.cases.end(), c) == spec.cases.end())
      throw Error(json_path.string(), "has no case " + c + "; see the case IDs in its \"split\"");
    if (spec.labels_pattern.empty()) throw Error(json_path.string(), "has no label maps to draw");
    Image image = io::read_image(spec.image_path(json_path.parent_path(), c));
    Image labels = io::read_label_map(spec.label_path(json_path.parent_path(), c));
    return {image, labels.pixels, spec.classes, c};
  }
  const Dataset data = load_tensor_pack(path);
  const std::string c = wanted.empty() ? data.cases.front() : wanted;
  const auto it = std::find(data.cases.begin(), data.cases.end(), c);
  if (it == data.cases.end()) throw Error(path.string(), "has no case " + c);
  if (!data.labels.defined()) throw Error(path.string(), "has no label maps to draw");
  const auto row = it - data.cases.begin();
  Image image;
  image.pixels = data.images[row];
  return {image, data.labels[row], data.classes, c};
}

// "JSRT-SCR, split train (160 cases), 100 epochs on cpu": one training run's record, in brief.
std::string training_summary(const nlohmann::json& provenance) {
  const int64_t epochs = provenance.value("epochs_done", int64_t{0});
  std::ostringstream s;
  s << provenance.value("dataset", std::string("?")) << ", split " << provenance.value("train_split", std::string("?"))
    << " (" << provenance.value("train_cases", 0) << " cases), " << epochs << (epochs == 1 ? " epoch on " : " epochs on ")
    << provenance.value("device", std::string("?"));
  return s.str();
}

// The models a fine-tune started from, each with its own record, the nearest first.
void print_lineage(std::ostream& out, const nlohmann::json& provenance) {
  for (const nlohmann::json* run = &provenance; run->is_object(); run = &(*run)["init"]) {
    // (models trained before recipes recorded options.init_from)
    const auto recipe = run->value("recipe", run->value("options", nlohmann::json::object()));
    const std::string init_from = recipe.is_object() ? recipe.value("init", recipe.value("init_from", std::string())) : std::string();
    if (init_from.empty()) return;
    out << "started from: " << init_from;
    if (!run->contains("init") || !(*run)["init"].is_object()) {
      out << " (this model keeps no record of it)\n";
      return;
    }
    const auto& init = (*run)["init"];
    out << ", trained on " << training_summary(init);
    if (init.contains("val_mean_dice") && init["val_mean_dice"].is_number())
      out << ", validation mean Dice " << std::fixed << std::setprecision(4) << init["val_mean_dice"].get<double>()
          << std::defaultfloat;
    out << "\n";
  }
}

// A model file or run folder: what the network is, what it was trained on, how well it did.
void print_model(std::ostream& out, const fs::path& path, const Model& model, bool as_json) {
  const auto& info = model.info;
  const auto provenance = nlohmann::json::parse(info.provenance_json, nullptr, false);
  const int64_t parameters = count_trainable_parameters(*model.net);
  const std::string stored_as = precision_name(model.stored_as);
  if (as_json) {
    auto j = nlohmann::json::parse(model_info_to_json(info));
    j["path"] = path.string();
    j["trainable_parameters"] = parameters;
    j["weights_stored_as"] = stored_as;
    // load_model verified both (or refused the file): the record says which protection it has.
    j["integrity"] = {{"crc32_of_every_record", "verified"},
                      {"weights_sha256", model.weights_sha256.empty() ? nlohmann::json() : nlohmann::json(model.weights_sha256)}};
    if (provenance.is_object() && provenance.contains("val_cases")) j["val_cases"] = provenance["val_cases"];
    out << j.dump(1) << "\n";
    return;
  }
  out << "model: " << path.string() << "\n";
  out << "network: " << info.network.architecture << ", " << info.network.in_channels << " input channel(s), "
      << info.network.num_classes << " classes, " << parameters << " trainable parameters (stored as " << stored_as
      << ")\n";
  out << "integrity: CRC-32 of every record"
      << (model.weights_sha256.empty() ? " (verified); no SHA-256 of the weights (an older file: seg-convert MODEL -o NEW.pth adds one)"
                                       : ", SHA-256 of the weights (verified)")
      << "\n";
  out << "classes:";
  for (const auto& [name, value] : info.classes.entries) out << " " << value << " " << name;
  out << "\ninput size: " << sized_text(info.input_size.at(0), info.input_size.at(1)) << "\n";
  out << "normalization: "
      << (info.normalization.mode == "image" ? std::string("image (each image on its own, percentile-clipped)")
                                             : "dataset (mean " + std::to_string(info.normalization.mean) + ", std " +
                                                   std::to_string(info.normalization.std) + ")")
      << "\n";
  if (info.training_intensity)
    out << "training intensities: " << number(info.training_intensity->low) << " .. " << number(info.training_intensity->high)
        << " (0.5 and 99.5 percentiles of the train split; seg-segment warns about films far outside them)\n";
  out << "post-processing (seg-segment runs it): "
      << (info.postprocessing.empty() ? "none" : join(info.postprocessing, ", ")) << "\n";
  if (info.framing) {
    std::ostringstream line;
    line << std::fixed << std::setprecision(3) << "framing (seg-segment reframes to it): margins around the structures "
         << "top " << info.framing->top << ", bottom " << info.framing->bottom << ", left " << info.framing->left
         << ", right " << info.framing->right << " of their box";
    out << line.str() << "\n";
  } else {
    out << "framing: not recorded (seg-segment segments in one pass; seg-convert --framing-from adds it)\n";
  }
  if (!info.overlaps.empty()) {
    std::vector<std::string> pairs;
    for (const auto& o : info.overlaps)
      pairs.push_back(info.classes.name_of(o.under) + " under " + info.classes.name_of(o.over));
    out << "drawn over in its training labels (seg-segment --whole restores): " << join(pairs, ", ") << "\n";
  }
  if (info.quality) out << "quality control (seg-segment --qc): " << quality_record_summary(*info.quality) << "\n";
  if (provenance.is_object() && provenance.contains("dataset")) {
    out << "trained on: " << training_summary(provenance) << "\n";
    if (provenance.contains("val_mean_dice")) {
      std::ostringstream line;
      const std::string cases = provenance.contains("validation") ? provenance["validation"].get<std::string>()
                                                                     : "split " + provenance.value("val_split", std::string("?"));
      line << std::fixed << std::setprecision(4) << "validation Dice (" << cases << ", epoch " << provenance.value("val_epoch", 0) << "): mean " << provenance["val_mean_dice"].get<double>();
      const auto dice = provenance["val_dice"].get<std::vector<double>>();
      for (size_t k = 0; k < dice.size() && k + 1 < info.classes.entries.size(); ++k)
        line << ", " << info.classes.entries[k + 1].first << " " << dice[k];
      out << line.str() << "\n";
    }
    if (provenance.contains("val_cases")) out << "validation cases: " << join(provenance["val_cases"].get<std::vector<std::string>>(), " ") << "\n";
    if (provenance.contains("recipe")) out << "recipe (" << provenance.value("recipe_name", std::string("?")) << "): " << provenance["recipe"].dump() << "\n";
    if (provenance.contains("options")) out << "training options: " << provenance["options"].dump() << "\n";
    print_lineage(out, provenance);
  }
  if (provenance.is_object() && provenance.value("imported", nlohmann::json()).is_object())
    out << "imported: from the PyTorch state_dict " << provenance["imported"].value("from", std::string("?")) << " as "
        << provenance["imported"].value("network", std::string("?")) << "\n";
}

// The mean Dice on the test split the model's training recorded (when it validated on the
// whole split "test"), or "-".
std::string recorded_test_figure(const std::string& provenance_json) {
  const auto provenance = nlohmann::json::parse(provenance_json, nullptr, false);
  if (!provenance.is_object() || !provenance.contains("val_mean_dice") || !provenance["val_mean_dice"].is_number() ||
      (provenance.value("val_split", std::string()) != "test" && provenance.value("validation", std::string()) != "split test"))
    return "-";
  std::ostringstream figure;
  figure << "test mean Dice " << std::fixed << std::setprecision(4) << provenance["val_mean_dice"].get<double>();
  return figure.str();
}

std::string file_size_text(uintmax_t bytes) {
  std::ostringstream text;
  if (bytes < (1u << 20)) text << (bytes + 1023) / 1024 << " KiB";
  else text << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1u << 20) << " MiB";
  return text.str();
}

// seg-inspect --models: every model --model NAME finds, one line each, the one it picks first.
void print_found_models(std::ostream& out, bool as_json) {
  const auto folders = model_search_folders();
  ordered_json list = ordered_json::array();
  for (const auto& found : list_models(folders)) {
    ordered_json entry{{"name", found.name}, {"network", "-"}, {"classes", nullptr},
                       {"bytes", fs::file_size(found.path)}, {"test", "-"}, {"path", found.path.string()}};
    try {
      const Model model = load_model(found.path);
      entry["network"] = model.info.network.architecture;
      entry["classes"] = model.info.classes.size();
      entry["test"] = recorded_test_figure(model.info.provenance_json);
    } catch (const Error& e) {
      entry["test"] = std::string("unreadable: ") + e.what();
    }
    list.push_back(entry);
  }
  if (as_json) {
    out << list.dump(2) << "\n";
    return;
  }
  for (const auto& m : list)
    out << m["name"].get<std::string>() << "  " << m["network"].get<std::string>() << "  "
        << (m["classes"].is_null() ? std::string("-") : std::to_string(m["classes"].get<int64_t>()) + " classes") << "  "
        << file_size_text(m["bytes"].get<uintmax_t>()) << "  " << m["test"].get<std::string>() << "  "
        << m["path"].get<std::string>() << "\n";
  if (list.empty()) {
    std::vector<std::string> places;
    for (const auto& folder : folders) places.push_back(folder.string());
    out << "no models in " << join(places, ", ") << " (SEG_MODEL_PATH adds folders)\n";
  }
}

}  // namespace

int inspect(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("inspect", err, [&]() -> int {
    CLI::App app{
        "Shows what an image, a label map or a data set holds: size, pixel type, spacing,\n"
        "intensity statistics, label histogram; for a data set (folder with dataset.json or a\n"
        ".pth tensor pack) also cases, splits and classes, with warnings for anything odd; for a\n"
        "model file or run folder its network, classes, normalisation and training record.\n"
        "  seg-inspect DATA [--json] [--overlay OUT.png [--case ID]]\n"
        "  seg-inspect IMAGE [--labels] [--gray] [--overlay OUT.png --label-map LABELS]\n"
        "  seg-inspect MODEL|NAME     a model file, run folder or installed model's name\n"
        "  seg-inspect --models       the models --model NAME finds (SEG_MODEL_PATH, then installed)",
        "seg-inspect"};
    add_max_pixels_option(app);
    std::string path_text;
    bool as_labels = false, gray = false, as_json = false, strict = false, list_found_models = false;
    OverlayRequest overlay;
    std::string overlay_path;
    app.add_option("path", path_text,
                   "image, label map, data set folder, dataset.json, tensor pack, model file, training run folder or "
                   "model name");
    app.add_flag("--models", list_found_models,
                 "list the models found by name, one a line: name, network, classes, file size, recorded test "
                 "figure, file");
    app.add_flag("--labels", as_labels, "treat the file as a label map");
    app.add_flag("--gray", gray, "accept a colour image, converted to grey");
    app.add_flag("--json", as_json, "machine-readable output");
    app.add_option("--overlay", overlay_path, "draw the image with its labels into this PNG");
    app.add_option("--case", overlay.case_id, "--overlay: the case of a data set (default: the first)");
    app.add_option("--label-map", overlay.label_map, "--overlay: the label map drawn over an image file");
    app.add_flag("--strict", strict, "exit with 1 when there are warnings");
    bool overwrite = false;
    app.add_flag("--overwrite", overwrite, "--overlay: replace an existing file");
    if (!parse(app, args, out)) return kOk;
    if (list_found_models != path_text.empty()) throw UsageError("give a path to inspect, or --models");
    if (list_found_models) {
      print_found_models(out, as_json);
      return kOk;
    }
    const fs::path path = find_model(path_text);
    if (!fs::exists(path)) throw Error(path.string(), "no such file or folder; check the path");
    if (!overlay_path.empty()) {
      Inputs inputs;
      inputs.add(path);
      inputs.add(overlay.label_map);
      check_output_file(overlay_path, inputs, overwrite ? Existing::overwrite : Existing::refuse,
                        "pass --overwrite to replace it");
    }
    if (is_model_path(path)) {
      if (!overlay_path.empty() || !overlay.case_id.empty() || !overlay.label_map.empty())
        throw UsageError("--overlay, --case and --label-map apply to images and data sets, not to models");
      const fs::path file = fs::is_directory(path) ? path / "model.pth" : path;
      print_model(out, file, load_model(file), as_json);
      return kOk;
    }

    const bool is_dataset = (fs::is_directory(path) && fs::exists(path / "dataset.json")) ||
                            path.extension() == ".json" || is_tensor_pack(path);
    if (fs::is_directory(path) && !is_dataset && fs::exists(path / "checkpoint.pt"))
      throw Error(path.string(), "is a training run with no model.pth yet (its first validation writes one); "
                                 "look again later or give a data set, model or image file");
    if (fs::is_directory(path) && !is_dataset)
      throw Error(path.string(), "is a folder without dataset.json; give a data set folder or an image file");
    if (!is_dataset && !overlay.case_id.empty()) throw UsageError("--case applies to data sets only");
    if (is_dataset && !overlay.label_map.empty()) throw UsageError("--label-map applies to image files only");
    if (overlay_path.empty() && (!overlay.case_id.empty() || !overlay.label_map.empty()))
      throw UsageError("--case and --label-map choose what --overlay draws; add --overlay OUT.png");

    size_t warnings = 0;
    if (is_dataset) {
      const fs::path json_path = fs::is_directory(path) ? path / "dataset.json" : path;
      const DatasetReport report = is_tensor_pack(path) ? scan_pack(path) : scan_folder(json_path);
      print_dataset(out, report, as_json);
      warnings = report.warnings.size();
      if (!overlay_path.empty()) {
        auto [image, labels, classes, c] = dataset_case(path, overlay.case_id);
        viz::write_png(overlay_path, viz::render_overlay(image, labels, classes, 0.45, report.name + " " + c));
        if (!as_json) out << "overlay of case " << c << ": " << overlay_path << "\n";
      }
    } else {
      io::ReadOptions read_options;
      read_options.to_gray = gray;
      const Image image = as_labels ? io::read_label_map(path) : io::read_image(path, read_options);
      print_image(out, path, image, as_labels, as_json);
      if (!overlay_path.empty()) {
        at::Tensor labels;
        Image background = image;
        if (!overlay.label_map.empty()) {
          labels = io::read_label_map(overlay.label_map).pixels;
        } else if (as_labels) {
          labels = image.pixels;  // a label map alone: drawn over black
          background.pixels = at::zeros_like(image.pixels);
        } else {
          throw UsageError("--overlay on an image needs --label-map LABELS (or --labels for a label map alone)");
        }
        if (labels.sizes() != background.pixels.sizes())
          throw Error(overlay.label_map, "is " + sized_text(labels.size(0), labels.size(1)) + " but the image is " +
                                             shape_text(image.height(), image.width()) + "; resample one with seg-convert --size");
        const auto classes = ClassTable::numbered(labels.max().item<int>() + 1);
        viz::write_png(overlay_path, viz::render_overlay(background, labels, classes, 0.45, path.filename().string()));
        if (!as_json) out << "overlay: " << overlay_path << "\n";
      }
    }
    return strict && warnings > 0 ? kBadInput : kOk;
  });
}

}  // namespace seg::tools
