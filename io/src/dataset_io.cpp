// Data set folders (dataset.json + image files) and tensor packs, read with every case checked.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>

#include <torch/torch.h>

#include <set>

#include "io_internal.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace {

std::string size_text(int64_t height, int64_t width) { return std::to_string(height) + "x" + std::to_string(width); }

Dataset resampled(Dataset data, int64_t height, int64_t width) {
  if (data.images.size(1) == height && data.images.size(2) == width) return data;
  std::vector<at::Tensor> images, labels;
  for (int64_t i = 0; i < data.size(); ++i) {
    Image image;
    image.pixels = data.images[i];
    images.push_back(resize_image(image, height, width).pixels);
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

Dataset load_folder(const fs::path& json_path, const LoadOptions& options) {
  const DatasetSpec spec = DatasetSpec::read(json_path);
  const fs::path root = json_path.parent_path();
  if (spec.labels_pattern.empty() && options.require_labels)
    throw Error(json_path.string(), "names no \"labels\" pattern, but labels are needed; add \"labels\": \"labels/{case}.png\"");

  // The size every case must have: the one asked for (cases are resampled to it), else the
  // one dataset.json states, else the first case's.
  std::optional<std::pair<int64_t, int64_t>> expected;
  if (!spec.size.empty()) expected = std::make_pair(spec.size[0], spec.size[1]);
  const bool resample = options.size.has_value();

  std::vector<at::Tensor> images, labels;
  std::vector<std::string> pixel_types;
  bool all_uint8 = true;
  for (const auto& c : spec.cases) {
    const fs::path image_path = spec.image_path(root, c);
    if (!fs::exists(image_path))
      throw Error(image_path.string(), "is missing (case " + c + " of " + json_path.string() + "); add the file or remove the case");
    Image image = read_image(image_path);
    std::optional<Image> label;
    if (!spec.labels_pattern.empty()) {
      const fs::path label_path = spec.label_path(root, c);
      if (!fs::exists(label_path)) {
        if (options.require_labels)
          throw Error(label_path.string(), "is missing (label map of case " + c + "); add it or remove the case");
      } else {
        label = read_label_map(label_path);
        if (label->height() != image.height() || label->width() != image.width())
          throw Error(label_path.string(), "is " + size_text(label->height(), label->width()) + " but its image " +
                                               image_path.string() + " is " + size_text(image.height(), image.width()) +
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
    }
    if (!resample) {
      if (!expected) expected = std::make_pair(image.height(), image.width());
      if (image.height() != expected->first || image.width() != expected->second)
        throw Error(image_path.string(), "is " + size_text(image.height(), image.width()) + " but the data set's size is " +
                                             size_text(expected->first, expected->second) +
                                             "; resample with --size or fix \"size\" in dataset.json");
    } else {
      image = resize_image(image, options.size->first, options.size->second);
      if (label) *label = resize_label_map(*label, options.size->first, options.size->second);
    }
    all_uint8 = all_uint8 && image.pixels.scalar_type() == at::kByte;
    images.push_back(image.pixels);
    if (label) labels.push_back(label->pixels);
  }
  // 8-bit sources stay uint8; anything else (16 bit, float) becomes float with its values kept.
  if (!all_uint8)
    for (auto& t : images) t = t.to(at::kFloat);

  Dataset data;
  data.name = spec.name;
  data.source = json_path.string();
  data.cases = spec.cases;
  data.classes = spec.classes;
  data.splits = spec.splits;
  data.images = torch::stack(images);
  if (!labels.empty()) {
    if (labels.size() != images.size())
      throw Error(json_path.string(), "some cases have label maps and some do not; a data set needs all or none");
    data.labels = torch::stack(labels);
  }
  data.validate();
  return data;
}

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
    if (options.size) data = resampled(std::move(data), options.size->first, options.size->second);
    return data;
  }
  if (detail::full_extension(path) == ".json") return load_folder(path, options);
  throw Error(path.string(), "is neither a data set folder, a dataset.json nor a .pth tensor pack");
}

void write_dataset_folder(const Dataset& data, const fs::path& dir) {
  data.validate();
  ensure_writable_dir(dir);
  ensure_writable_dir(dir / "images");
  if (data.labels.defined()) ensure_writable_dir(dir / "labels");
  // PNG has no float type: float images (from 16-bit or float sources) go to NIfTI.
  const bool byte_images = data.images.scalar_type() == at::kByte;
  DatasetSpec spec;
  spec.name = data.name;
  spec.size = {data.images.size(1), data.images.size(2)};
  spec.images_pattern = byte_images ? "images/{case}.png" : "images/{case}.nii.gz";
  if (data.labels.defined()) spec.labels_pattern = "labels/{case}.png";
  spec.classes = data.classes;
  spec.splits = data.splits;
  spec.cases = data.cases;
  for (int64_t i = 0; i < data.size(); ++i) {
    const std::string& c = data.cases[static_cast<size_t>(i)];
    Image image;
    image.pixels = data.images[i].contiguous();
    image.pixel_type = byte_images ? "uint8" : "float32";
    write_image(spec.image_path(dir, c), image);
    if (data.labels.defined()) {
      Image label;
      label.pixels = data.labels[i].contiguous();
      write_label_map(spec.label_path(dir, c), label);
    }
  }
  write_file_atomically(dir / "dataset.json", spec.to_json());
}

}  // namespace seg::io
