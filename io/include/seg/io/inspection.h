#pragma once
// What an image, a label map or a data set holds, as seg-inspect shows it: sizes, pixel types,
// intensity statistics, label histograms, cases, splits and classes, with a warning for
// anything odd; as text and as JSON. docs/tools.md shows the output.
#include <seg/dataset.h>
#include <seg/image.h>

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace seg::io {

// Running intensity statistics over many images. The spread is kept as the sum of squared
// deviations from the mean, merged image by image (Chan et al.): a sum of squares minus the
// squared mean loses every digit on values like 1e9 and 1e9 + 1.
struct IntensityStatistics {
  double min = INFINITY, max = -INFINITY, running_mean = 0, squared_deviations = 0;
  int64_t count = 0;
  void add(const at::Tensor& pixels);
  double mean() const;
  double std() const;  // population standard deviation
};

// Pixel counts per label value 0..255.
struct LabelHistogram {
  std::vector<int64_t> counts = std::vector<int64_t>(256, 0);
  void add(const at::Tensor& labels);
  int64_t total() const;
};

// Everything a data set report says.
struct DatasetReport {
  std::string name, kind, source, description;  // kind: "data set folder" or "tensor pack"
  std::vector<std::string> cases;
  std::vector<std::pair<std::string, int64_t>> splits;  // name and cases, in the order of their first case
  ClassTable classes;
  std::map<std::pair<int64_t, int64_t>, int64_t> sizes;  // (height, width) -> number of cases
  std::map<std::string, int64_t> pixel_types;             // stored type -> number of cases
  int64_t labelled = 0;                                   // cases with a label map
  IntensityStatistics intensity;
  LabelHistogram histogram;
  std::vector<std::string> warnings;
};

// Scans a data set: a folder with dataset.json, the dataset.json itself, or a tensor pack. A
// folder is read case by case, so that a case that cannot be read becomes a warning rather
// than the end; warnings also name cases in no split or in several, label values outside the
// class table, classes without pixels, missing label maps, and sizes or pixel types that
// differ. Throws seg::Error when dataset.json or the tensor pack itself cannot be read.
DatasetReport scan_dataset(const std::filesystem::path& path);

// The report as text lines and as a JSON object; both end with a newline.
std::string dataset_report_text(const DatasetReport& report);
std::string dataset_report_json(const DatasetReport& report);

// One image or label map file.
struct ImageReport {
  std::filesystem::path path;
  bool label_map = false;  // read as a label map
  Image image;
  IntensityStatistics intensity;
  // For a label map, and for an integer image of at most 32 values within 0..255 (which is
  // likely one); empty otherwise.
  std::optional<LabelHistogram> histogram;
};

ImageReport describe_image(const std::filesystem::path& path, const Image& image, bool label_map);
std::string image_report_text(const ImageReport& report);
std::string image_report_json(const ImageReport& report);

// One case of a data set with its labels, for drawing.
struct DatasetCase {
  std::string id;
  Image image;
  at::Tensor labels;  // H x W kByte
  ClassTable classes;
};

// The case `id` (empty: the first case) of a data set folder, its dataset.json or a tensor
// pack. Throws seg::Error naming the data set when it has no such case or no label maps.
DatasetCase read_dataset_case(const std::filesystem::path& path, const std::string& id);

}  // namespace seg::io
