#pragma once
// Data sets: the dataset.json description of a folder, and the in-memory / tensor-pack form.
#include <seg/error.h>
#include <seg/image.h>

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace seg {

// Whether a number read from a file (int64, before any narrowing) can be a label value: label
// maps are 8-bit, 0..255.
inline bool is_label_value(int64_t value) { return value >= 0 && value <= 255; }

// Class names with their label values, in ascending value order ("background" = 0 first).
struct ClassTable {
  std::vector<std::pair<std::string, int>> entries;

  int64_t size() const { return static_cast<int64_t>(entries.size()); }
  int max_value() const;                       // largest label value
  std::string name_of(int value) const;        // "label_<v>" when unknown
  bool contains(int value) const;
  static ClassTable numbered(int num_classes); // background, label_1, ...
};

// A split that a data set does not have; the message lists those it has, and a tool adds
// which option chooses another.
class UnknownSplit : public Error {
 public:
  using Error::Error;
};

// The cases of `split` among `splits`; throws UnknownSplit naming `source` otherwise.
const std::vector<std::string>& split_cases(const std::map<std::string, std::vector<std::string>>& splits,
                                            const std::string& split, const std::string& source);

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
  // What is odd but readable: keys the format does not define ("unknown key \"splits\" (did
  // you mean \"split\"?)"), for the tools to show.
  std::vector<std::string> warnings;

  // Parses and validates; throws seg::Error naming `path` on any problem (naming the unknown
  // keys too, since a misspelt key is the likely cause).
  static DatasetSpec read(const std::filesystem::path& path);
  std::string to_json() const;
  std::filesystem::path image_path(const std::filesystem::path& root, const std::string& c) const;
  std::filesystem::path label_path(const std::filesystem::path& root, const std::string& c) const;
};

// A whole data set in memory, as training needs it.
// images: N x H x W in the sources' pixel type: kByte (uint8), kShort (int16), kInt (uint16,
// widened since LibTorch 1.13 has no uint16, or int32) or kFloat (float sources); a set that
// mixes types has the widest. labels: N x H x W kByte, or undefined when the data set has no
// labels.
struct Dataset {
  std::string name;
  std::string description;
  std::string source;  // where it was read from
  at::Tensor images;
  at::Tensor labels;
  std::vector<std::string> cases;
  ClassTable classes;
  std::map<std::string, std::vector<std::string>> splits;
  // Each case's physical geometry, in case order; empty when no source stated a spacing.
  std::vector<Geometry> geometry;
  // What reading found odd but usable (dataset.json's unknown keys, mixed pixel types), for
  // the tools to print as warnings.
  std::vector<std::string> warnings;
  // Cases left out because a file of theirs was missing (io::LoadOptions::skip_missing).
  std::vector<std::string> left_out;

  int64_t size() const { return static_cast<int64_t>(cases.size()); }
  // Row indices of a split's cases; throws seg::Error if the split is unknown.
  std::vector<int64_t> split_indices(const std::string& split) const;
  // The subset of rows of a split (images, labels, cases), same classes.
  Dataset subset(const std::string& split) const;
  // Checks shapes, dtypes, label values within the class table; throws seg::Error.
  void validate() const;
};

// The pixel type a data set's images stand for: "uint8", "int16", "uint16" (kInt within
// 0..65535), "int32" or "float32".
std::string stored_pixel_type(const at::Tensor& images);

// The warning for a data set whose images mix pixel types ("pixel types differ: uint8 (30
// cases), uint16 (30 cases): ..."), or "" for one type; `cases_per_type` counts cases by type.
std::string pixel_type_mix_warning(const std::map<std::string, int64_t>& cases_per_type);

// The tensor pack: one .pth file (torch::pickle_save of a dict) that Python's torch.load
// reads: {"format": "segsuite-pack-1", "name", "images", "labels", "cases",
// "class_names", "class_values", "split_names", "split_<name>": [case, ...]}, and when there
// is one, "description" and "geometry" (N x 9 float64: has_spacing, spacing x y, origin x y,
// direction row-major).
void save_tensor_pack(const Dataset& data, const std::filesystem::path& path);
Dataset load_tensor_pack(const std::filesystem::path& path);
bool is_tensor_pack(const std::filesystem::path& path);  // by extension .pth / .pt

}  // namespace seg
