// Data set folders (dataset.json + image files) and tensor packs, read with every case checked.
#include <seg/error.h>
#include <seg/report_text.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>

#include "io_internal.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace {


// How many cases a message about missing files names before "and N more".
constexpr size_t kCasesNamed = 5;

// A case whose image or label map is not there, with those files relative to the folder.
struct CaseWithoutFiles {
  std::string case_id;
  std::vector<std::string> files;
};

// "2 of 60 cases have files missing: b (images/b.png), c (labels/c.png)", the first few named.
std::string missing_files_text(const std::vector<CaseWithoutFiles>& missing, size_t cases) {
  std::string text = std::to_string(missing.size()) + " of " + std::to_string(cases) + (cases == 1 ? " case" : " cases") +
                     (missing.size() == 1 ? " has" : " have") + " files missing: ";
  for (size_t i = 0; i < missing.size() && i < kCasesNamed; ++i) {
    std::string files;
    for (const auto& f : missing[i].files) files += (files.empty() ? "" : ", ") + f;
    text += (i ? ", " : "") + missing[i].case_id + " (" + files + ")";
  }
  if (missing.size() > kCasesNamed) text += " and " + std::to_string(missing.size() - kCasesNamed) + " more";
  return text;
}

// The cases that lack a file, and whether the data set has label maps at all: without
// `require_labels`, a data set none of whose label maps exist is read as images alone.
std::pair<std::vector<CaseWithoutFiles>, bool> find_missing_files(const DatasetSpec& spec, const fs::path& root,
                                                                  bool require_labels) {
  std::vector<CaseWithoutFiles> missing;
  std::vector<std::string> without_labels;
  for (const auto& c : spec.cases) {
    CaseWithoutFiles entry{c, {}};
    if (!fs::exists(spec.image_path(root, c))) entry.files.push_back(spec.image_path("", c).string());
    if (!spec.labels_pattern.empty() && !fs::exists(spec.label_path(root, c))) {
      entry.files.push_back(spec.label_path("", c).string());
      without_labels.push_back(c);
    }
    if (!entry.files.empty()) missing.push_back(std::move(entry));
  }
  const bool has_labels = !spec.labels_pattern.empty() && (require_labels || without_labels.size() < spec.cases.size());
  if (!has_labels && !spec.labels_pattern.empty()) {
    // No label map at all, and none needed: only missing images count.
    std::vector<CaseWithoutFiles> images_missing;
    for (auto& entry : missing)
      if (entry.files.size() == 2 || !std::count(without_labels.begin(), without_labels.end(), entry.case_id))
        images_missing.push_back({entry.case_id, {entry.files.front()}});
    missing = std::move(images_missing);
  }
  return {missing, has_labels};
}

// The spec without the given cases, in its cases and in every split.
DatasetSpec without_cases(DatasetSpec spec, const std::vector<CaseWithoutFiles>& left_out) {
  std::set<std::string> gone;
  for (const auto& entry : left_out) gone.insert(entry.case_id);
  auto keep = [&](std::vector<std::string>& cases) {
    cases.erase(std::remove_if(cases.begin(), cases.end(), [&](const std::string& c) { return gone.count(c) > 0; }),
                cases.end());
  };
  keep(spec.cases);
  for (auto& [name, cases] : spec.splits) keep(cases);
  return spec;
}

// The type a data set of these image types is held in: the widest, integers kept as integers.
at::ScalarType common_type(at::ScalarType a, at::ScalarType b) {
  const auto type = at::promoteTypes(a, b);
  return type == at::kByte || type == at::kShort || type == at::kInt ? type : at::kFloat;
}

Dataset load_folder(const fs::path& json_path, const LoadOptions& options) {
  DatasetSpec spec = DatasetSpec::read(json_path);
  const fs::path root = json_path.parent_path();
  if (spec.labels_pattern.empty() && options.require_labels)
    throw Error(json_path.string(), "names no \"labels\" pattern, but labels are needed; add \"labels\": \"labels/{case}.png\"");

  // Every case without its files, named together before any file is read.
  const auto [missing, has_labels] = find_missing_files(spec, root, options.require_labels);
  std::vector<std::string> left_out;
  if (!missing.empty()) {
    const std::string what = missing_files_text(missing, spec.cases.size());
    if (!options.skip_missing)
      throw Error(json_path.string(), what + "; add the files or remove the cases from dataset.json "
                                             "(seg-train and seg-weights leave them out with --skip-missing)");
    if (missing.size() == spec.cases.size()) throw Error(json_path.string(), what + "; no case is left to read");
    for (const auto& entry : missing) left_out.push_back(entry.case_id);
    spec = without_cases(std::move(spec), missing);
  }

  // The size every case gets: the one asked for, else the one dataset.json states (cases are
  // resampled to either); without both, every case must have the first case's.
  std::optional<std::pair<int64_t, int64_t>> target = options.size;
  if (!target && !spec.size.empty()) target = std::make_pair(spec.size[0], spec.size[1]);
  // Every case is resampled to it: the cap on what a file may declare holds for it too.
  if (target && target->first > default_max_pixels() / target->second)
    throw Error(json_path.string(), "asks for cases of " + std::to_string(target->first) + " x " +
                                        std::to_string(target->second) + " pixels, more than the limit of " +
                                        std::to_string(default_max_pixels()) + "; if that size is meant, raise --max-pixels");
  std::optional<std::pair<int64_t, int64_t>> first_size;

  std::vector<at::Tensor> images, labels;
  std::vector<Geometry> geometry;
  std::map<std::string, int64_t> cases_per_type;
  std::optional<at::ScalarType> type;
  bool any_spacing = false;
  for (const auto& c : spec.cases) {
    const fs::path image_path = spec.image_path(root, c);
    Image image = read_image(image_path);
    std::optional<Image> label;
    if (has_labels) {
      const fs::path label_path = spec.label_path(root, c);
      label = read_label_map(label_path);
      if (label->height() != image.height() || label->width() != image.width())
        throw Error(label_path.string(), "is " + size_text_compact(label->height(), label->width()) + " (height x width) but its image " +
                                             image_path.string() + " is " + size_text_compact(image.height(), image.width()) +
                                             "; they must match");
      const auto present = std::get<0>(at::_unique(label->pixels.flatten()));
      for (int64_t i = 0; i < present.numel(); ++i) {
        const int value = present[i].item<int>();
        if (!spec.classes.contains(value))
          throw Error(label_path.string(), "holds label value " + std::to_string(value) +
                                               ", which the class table of " + json_path.string() +
                                               " lacks; add the class or fix the label map");
      }
    }
    if (target) {
      image = resize_image(image, target->first, target->second);
      if (label) *label = resize_label_map(*label, target->first, target->second);
    } else if (!first_size) {
      first_size = std::make_pair(image.height(), image.width());
    } else if (image.height() != first_size->first || image.width() != first_size->second) {
      throw Error(json_path.string(),
                  spec.image_path("", c).string() + " is " + size_text_compact(image.height(), image.width()) +
                      " (height x width), " + spec.image_path("", spec.cases.front()).string() + " " +
                      size_text_compact(first_size->first, first_size->second) +
                      "; give \"size\" in dataset.json and every case is resampled to it, or resample with seg-convert --size");
    }
    ++cases_per_type[image.pixel_type.empty() ? stored_pixel_type(image.pixels) : image.pixel_type];
    type = type ? common_type(*type, image.pixels.scalar_type()) : common_type(image.pixels.scalar_type(), at::kByte);
    any_spacing = any_spacing || image.geometry.has_spacing;
    geometry.push_back(image.geometry);
    images.push_back(image.pixels);
    if (label) labels.push_back(label->pixels);
  }
  for (auto& t : images) t = t.to(*type);

  Dataset data;
  data.name = spec.name;
  data.description = spec.description;
  data.source = json_path.string();
  data.cases = spec.cases;
  data.classes = spec.classes;
  data.splits = spec.splits;
  data.images = torch::stack(images);
  if (has_labels) data.labels = torch::stack(labels);
  if (any_spacing) data.geometry = std::move(geometry);
  data.warnings = spec.warnings;
  if (const auto mix = pixel_type_mix_warning(cases_per_type); !mix.empty()) data.warnings.push_back(mix);
  data.left_out = std::move(left_out);
  data.validate();
  return data;
}

bool stores_any_type(const std::string& extension) { return extension != ".png" && extension != ".tif"; }

}  // namespace

Dataset load_dataset(const fs::path& path, const LoadOptions& options) {
  if (!fs::exists(path)) throw Error(path.string(), "no such file or folder; give a data set folder, its dataset.json or a .pth tensor pack");
  if (fs::is_directory(path)) {
    if (!fs::exists(path / "dataset.json"))
      throw Error(path.string(), "has no dataset.json, so it is not a data set folder; "
                                 "make one with seg-convert or write dataset.json");
    return load_folder(path / "dataset.json", options);
  }
  if (is_tensor_pack(path)) {
    Dataset data = load_tensor_pack(path);
    if (options.require_labels && !data.labels.defined())
      throw Error(path.string(), "tensor pack holds no label maps, but labels are needed");
    if (options.size) data = resample_dataset(std::move(data), options.size->first, options.size->second);
    return data;
  }
  if (detail::full_extension(path) == ".json") return load_folder(path, options);
  throw Error(path.string(), "is neither a data set folder, a dataset.json nor a .pth tensor pack");
}

Dataset resample_dataset(Dataset data, int64_t height, int64_t width) {
  if (data.images.size(1) == height && data.images.size(2) == width) return data;
  std::vector<at::Tensor> images, labels;
  for (int64_t i = 0; i < data.size(); ++i) {
    Image image;
    image.pixels = data.images[i];
    if (!data.geometry.empty()) image.geometry = data.geometry[static_cast<size_t>(i)];
    image = resize_image(image, height, width);
    images.push_back(image.pixels);
    if (!data.geometry.empty()) data.geometry[static_cast<size_t>(i)] = image.geometry;
    if (data.labels.defined()) {
      Image label;
      label.pixels = data.labels[i];
      labels.push_back(resize_label_map(label, height, width).pixels);
    }
  }
  data.images = torch::stack(images);
  if (data.labels.defined()) data.labels = torch::stack(labels);
  return data;
}

std::string image_extension_for(const Dataset& data, const std::string& extension) {
  const std::string type = stored_pixel_type(data.images);
  // PNG and TIFF hold 8 and 16 bits unsigned; int16 would come back as uint16.
  const bool fits = type == "uint8" || type == "uint16";
  return fits || stores_any_type(extension) ? extension : ".nii.gz";
}

void write_dataset_folder(const Dataset& data, const fs::path& dir, const std::string& extension) {
  data.validate();
  static const std::set<std::string> kExtensions = {".png", ".tif", ".nii", ".nii.gz", ".nrrd", ".mha"};
  if (!kExtensions.count(extension))
    throw Error(dir.string(), "cannot write a data set's files as \"" + extension + "\"; use .png, .tif, .nii, .nii.gz, .nrrd or .mha");
  ensure_writable_dir(dir);
  ensure_writable_dir(dir / "images");
  if (data.labels.defined()) ensure_writable_dir(dir / "labels");
  const std::string pixel_type = stored_pixel_type(data.images);
  DatasetSpec spec;
  spec.name = data.name;
  spec.description = data.description;
  spec.size = {data.images.size(1), data.images.size(2)};
  spec.images_pattern = "images/{case}" + image_extension_for(data, extension);
  if (data.labels.defined()) spec.labels_pattern = "labels/{case}" + extension;
  spec.classes = data.classes;
  spec.splits = data.splits;
  spec.cases = data.cases;
  for (int64_t i = 0; i < data.size(); ++i) {
    const std::string& c = data.cases[static_cast<size_t>(i)];
    const Geometry geometry = data.geometry.empty() ? Geometry{} : data.geometry[static_cast<size_t>(i)];
    write_image(spec.image_path(dir, c), Image{data.images[i].contiguous(), geometry, pixel_type});
    if (data.labels.defined()) write_label_map(spec.label_path(dir, c), Image{data.labels[i].contiguous(), geometry, "uint8"});
  }
  write_file_atomically(dir / "dataset.json", spec.to_json());
}

}  // namespace seg::io
