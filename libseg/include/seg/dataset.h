#pragma once
// Data sets: the dataset.json description of a folder, and the in-memory / tensor-pack form.
#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace seg {

// Class names with their label values, in ascending value order ("background" = 0 first).
struct ClassTable {
  std::vector<std::pair<std::string, int>> entries;

  int64_t size() const { return static_cast<int64_t>(entries.size()); }
  int max_value() const;                       // largest label value
  std::string name_of(int value) const;        // "label_<v>" when unknown
  bool contains(int value) const;
  static ClassTable numbered(int num_classes); // background, label_1, ...
};

// What dataset.json says (see docs/formats.md). Paths are patterns with "{case}".
struct DatasetSpec {
  std::string name;
  std::string description;
  std::vector<int64_t> size;  // [H, W], empty when not stated
  std::string images_pattern;
  std::string labels_pattern;  // may be empty: images only
  ClassTable classes;
  std::map<std::string, std::vector<std::string>> splits;  // ordered by split name
  std::vector<std::string> cases;  // every case: splits' cases in order of first mention

  // Parses and validates; throws seg::Error naming `path` on any problem.
  static DatasetSpec read(const std::filesystem::path& path);
  std::string to_json() const;
  std::filesystem::path image_path(const std::filesystem::path& root, const std::string& c) const;
  std::filesystem::path label_path(const std::filesystem::path& root, const std::string& c) const;
};

// A whole data set in memory, as training needs it.
// images: N x H x W, kByte (or kFloat for float sources); labels: N x H x W kByte, or
// undefined when the data set has no labels.
struct Dataset {
  std::string name;
  std::string source;  // where it was read from
  at::Tensor images;
  at::Tensor labels;
  std::vector<std::string> cases;
  ClassTable classes;
  std::map<std::string, std::vector<std::string>> splits;

  int64_t size() const { return static_cast<int64_t>(cases.size()); }
  // Row indices of a split's cases; throws seg::Error if the split is unknown.
  std::vector<int64_t> split_indices(const std::string& split) const;
  // The subset of rows of a split (images, labels, cases), same classes.
  Dataset subset(const std::string& split) const;
  // Checks shapes, dtypes, label values within the class table; throws seg::Error.
  void validate() const;
};

// The tensor pack: one .pth file (torch::pickle_save of a dict) that Python's torch.load
// reads: {"format": "segsuite-pack-1", "name", "images", "labels", "cases",
// "class_names", "class_values", "split_names", "split_<name>": [case, ...]}.
void save_tensor_pack(const Dataset& data, const std::filesystem::path& path);
Dataset load_tensor_pack(const std::filesystem::path& path);
bool is_tensor_pack(const std::filesystem::path& path);  // by extension .pth / .pt

}  // namespace seg
