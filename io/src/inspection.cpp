#include <seg/error.h>
#include <seg/io/image_io.h>
#include <seg/io/inspection.h>
#include <seg/report_text.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <tuple>

#include "json_text.h"

namespace seg::io {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

void IntensityStatistics::add(const at::Tensor& pixels) {
  const auto values = pixels.to(at::kDouble);
  min = std::min(min, values.min().item<double>());
  max = std::max(max, values.max().item<double>());
  const int64_t added = values.numel();
  if (added == 0) return;
  const double added_mean = values.mean().item<double>();
  const double added_deviations = (values - added_mean).square().sum().item<double>();
  const double total = static_cast<double>(count + added), delta = added_mean - running_mean;
  running_mean += delta * static_cast<double>(added) / total;
  squared_deviations += added_deviations + delta * delta * static_cast<double>(count) * static_cast<double>(added) / total;
  count += added;
}

double IntensityStatistics::mean() const { return running_mean; }

double IntensityStatistics::std() const { return count ? std::sqrt(squared_deviations / static_cast<double>(count)) : 0; }

void LabelHistogram::add(const at::Tensor& labels) {
  const auto c = at::bincount(labels.flatten().to(at::kLong), {}, 256);
  for (int v = 0; v < 256; ++v) counts[static_cast<size_t>(v)] += c[v].item<int64_t>();
}

int64_t LabelHistogram::total() const {
  int64_t t = 0;
  for (auto c : counts) t += c;
  return t;
}

namespace {

ordered_json intensity_json(const IntensityStatistics& s) {
  return {{"min", s.min}, {"max", s.max}, {"mean", s.mean()}, {"std", s.std()}};
}

std::string intensity_text(const IntensityStatistics& s) {
  return "intensity: min " + number_text(s.min) + ", max " + number_text(s.max) + ", mean " + number_text(s.mean()) +
         ", std " + number_text(s.std()) + "\n";
}

// The values that have pixels or a class.
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

std::string histogram_text(const LabelHistogram& histogram, const ClassTable& classes) {
  const double total = static_cast<double>(std::max<int64_t>(1, histogram.total()));
  std::ostringstream out;
  out << "labels:\n";
  for (int v = 0; v < 256; ++v) {
    const auto n = histogram.counts[static_cast<size_t>(v)];
    if (n == 0 && !classes.contains(v)) continue;
    out << "  " << std::setw(3) << v << "  " << std::left << std::setw(16) << classes.name_of(v) << std::right
        << std::setw(12) << n << "  " << std::fixed << std::setprecision(2) << std::setw(6)
        << 100.0 * static_cast<double>(n) / total << " %" << std::defaultfloat << "\n";
  }
  return out.str();
}

// Splits in the order of their first case, and warnings for cases in none or several.
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

// The warnings that need every case seen: label values and classes, sizes, pixel types.
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
      list += (list.empty() ? "" : ", ") + size_text(size.first, size.second) + " (" + cases_text(n) + ")";
    report.warnings.push_back("image sizes differ" + std::string(kSizeOrder) + ": " + list +
                              "; give \"size\" in dataset.json and every case is resampled to it, or resample with "
                              "seg-convert --size");
  }
  if (const auto mix = pixel_type_mix_warning(report.pixel_types); !mix.empty()) report.warnings.push_back(mix);
}

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
      image = read_image(image_path);
      report.sizes[{image->height(), image->width()}]++;
      report.pixel_types[image->pixel_type]++;
      report.intensity.add(image->pixels);
      if (!spec.size.empty() && (image->height() != spec.size[0] || image->width() != spec.size[1]))
        report.warnings.push_back(image_path.string() + " is " + size_text_with_order(image->height(), image->width()) +
                                  ", not the stated size " + size_text(spec.size[0], spec.size[1]) +
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
      const Image labels = read_label_map(label_path);
      ++report.labelled;
      report.histogram.add(labels.pixels);
      if (image && (labels.height() != image->height() || labels.width() != image->width()))
        report.warnings.push_back(label_path.string() + " is " + size_text_with_order(labels.height(), labels.width()) +
                                  " but its image is " + size_text(image->height(), image->width()));
    } catch (const Error& e) {
      report.warnings.push_back(e.what());
    }
  }
  if (spec.labels_pattern.empty()) report.warnings.push_back("the data set has no label maps (no \"labels\" pattern)");
  if (!missing_labels.empty())
    report.warnings.push_back(std::to_string(missing_labels.size()) + " cases have no label map (first: " +
                              missing_labels.front() + ", expected " +
                              spec.label_path(root, missing_labels.front()).string() + ")");
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

// A lone label map has no class names: 0 is background, the rest label_<v>.
ClassTable background_only() {
  ClassTable table;
  table.entries.emplace_back("background", 0);
  return table;
}

}  // namespace

DatasetReport scan_dataset(const fs::path& path) {
  if (is_tensor_pack(path)) return scan_pack(path);
  return scan_folder(fs::is_directory(path) ? path / "dataset.json" : path);
}

std::string dataset_report_json(const DatasetReport& r) {
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
  for (const auto& [size, n] : r.sizes)
    j["image_sizes"].push_back({{"height", size.first}, {"width", size.second}, {"cases", n}});
  j["pixel_types"] = ordered_json::object();
  for (const auto& [type, n] : r.pixel_types) j["pixel_types"][type] = n;
  j["intensity"] = intensity_json(r.intensity);
  j["labels"] = histogram_json(r.histogram, r.classes);
  j["warnings"] = r.warnings;
  return detail::json_text(j, 2) + "\n";
}

std::string dataset_report_text(const DatasetReport& r) {
  std::ostringstream out;
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
    out << (it == r.sizes.begin() ? " " : "; ") << size_text(it->first.first, it->first.second)
        << (it == r.sizes.begin() ? kSizeOrder : "") << ", " << cases_text(it->second);
  out << "\npixel type:";
  for (auto it = r.pixel_types.begin(); it != r.pixel_types.end(); ++it)
    out << (it == r.pixel_types.begin() ? " " : "; ") << it->first << ", " << cases_text(it->second);
  out << "\n" << intensity_text(r.intensity);
  if (r.labelled > 0) out << histogram_text(r.histogram, r.classes);
  if (r.warnings.empty()) out << "warnings: none\n";
  for (const auto& w : r.warnings) out << "warning: " << w << "\n";
  return out.str();
}

ImageReport describe_image(const fs::path& path, const Image& image, bool label_map) {
  ImageReport report;
  report.path = path;
  report.label_map = label_map;
  report.image = image;
  report.intensity.add(image.pixels);
  const bool integer = !image.pixels.is_floating_point();
  if (label_map || (integer && report.intensity.min >= 0 && report.intensity.max <= 255 &&
                    std::get<0>(at::_unique(image.pixels.flatten())).numel() <= 32)) {
    report.histogram.emplace();
    report.histogram->add(image.pixels);
  }
  return report;
}

std::string image_report_json(const ImageReport& r) {
  const Image& image = r.image;
  const auto& g = image.geometry;
  ordered_json j;
  j["file"] = r.path.string();
  j["kind"] = r.label_map ? "label map" : "image";
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
  j["intensity"] = intensity_json(r.intensity);
  if (r.histogram) j["labels"] = histogram_json(*r.histogram, background_only());
  return detail::json_text(j, 2) + "\n";
}

std::string image_report_text(const ImageReport& r) {
  const Image& image = r.image;
  const auto& g = image.geometry;
  std::string text = r.path.string() + " (" + (r.label_map ? "label map" : "image") + ")\n";
  text += "size: " + size_text_with_order(image.height(), image.width()) + "\n";
  text += "pixel type: " + image.pixel_type + "\n";
  if (g.has_spacing) {
    text += "spacing: " + number_text(g.spacing[0]) + " x " + number_text(g.spacing[1]) + " mm\n";
    text += "origin: " + number_text(g.origin[0]) + ", " + number_text(g.origin[1]) + "\n";
    text += "direction: " + number_text(g.direction[0]) + " " + number_text(g.direction[1]) + " / " +
            number_text(g.direction[2]) + " " + number_text(g.direction[3]) + "\n";
  } else {
    text += "spacing: none (the format stores no physical spacing)\n";
  }
  text += intensity_text(r.intensity);
  if (r.histogram) text += histogram_text(*r.histogram, background_only());
  return text;
}

DatasetCase read_dataset_case(const fs::path& path, const std::string& id) {
  if (fs::is_directory(path) || path.extension() == ".json") {
    const fs::path json_path = fs::is_directory(path) ? path / "dataset.json" : path;
    const DatasetSpec spec = DatasetSpec::read(json_path);
    const std::string c = id.empty() ? spec.cases.front() : id;
    if (std::find(spec.cases.begin(), spec.cases.end(), c) == spec.cases.end())
      throw Error(json_path.string(), "has no case " + c + "; see the case IDs in its \"split\"");
    if (spec.labels_pattern.empty()) throw Error(json_path.string(), "has no label maps to draw");
    Image image = read_image(spec.image_path(json_path.parent_path(), c));
    Image labels = read_label_map(spec.label_path(json_path.parent_path(), c));
    return {c, image, labels.pixels, spec.classes};
  }
  const Dataset data = load_tensor_pack(path);
  const std::string c = id.empty() ? data.cases.front() : id;
  const auto it = std::find(data.cases.begin(), data.cases.end(), c);
  if (it == data.cases.end()) throw Error(path.string(), "has no case " + c);
  if (!data.labels.defined()) throw Error(path.string(), "has no label maps to draw");
  const auto row = it - data.cases.begin();
  Image image;
  image.pixels = data.images[row];
  return {c, image, data.labels[row], data.classes};
}

}  // namespace seg::io
