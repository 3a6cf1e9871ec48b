// The original JSRT distribution: raw 12-bit .IMG radiographs and the SCR mask GIFs.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "gif.h"
#include "io_internal.h"
#include "jsrt_names.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The display grey levels (4095 - value: bone white, lung dark) of a raw .IMG file.
at::Tensor read_raw_display(const fs::path& path, int64_t raw_size) {
  const std::string bytes = read_file(path);
  const size_t expected = static_cast<size_t>(raw_size * raw_size * 2);
  if (bytes.size() != expected)
    throw Error(path.string(), "has " + std::to_string(bytes.size()) + " bytes, but a " + std::to_string(raw_size) + "x" +
                                   std::to_string(raw_size) + " 16-bit JSRT image has " + std::to_string(expected) +
                                   "; the file is truncated or not a JSRT .IMG");
  auto grey = torch::empty({raw_size, raw_size}, torch::kFloat);
  float* out = grey.data_ptr<float>();
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  for (int64_t i = 0; i < raw_size * raw_size; ++i) {
    // Big-endian, 12 significant bits; anything above 4095 is clipped.
    const int value = std::min(4095, (in[2 * i] << 8) | in[2 * i + 1]);
    out[i] = static_cast<float>(4095 - value);
  }
  return grey;
}

// Area average to size x size, then 0..4095 onto 0..255.
at::Tensor display_to_uint8(const at::Tensor& grey, int64_t size) {
  cv::Mat source(static_cast<int>(grey.size(0)), static_cast<int>(grey.size(1)), CV_32F, grey.data_ptr<float>());
  cv::Mat averaged;
  cv::resize(source, averaged, cv::Size(static_cast<int>(size), static_cast<int>(size)), 0, 0, cv::INTER_AREA);
  auto t = detail::tensor_of(averaged);
  return (t * (255.0 / 4095.0)).round().clamp(0, 255).to(torch::kByte);
}

// The folder of one SCR structure: "right lung", "right_lung" (any case).
fs::path structure_folder(const fs::path& masks_dir, const std::string& structure) {
  std::string spaced = structure;
  std::replace(spaced.begin(), spaced.end(), '_', ' ');
  for (const auto& entry : fs::directory_iterator(masks_dir)) {
    if (!entry.is_directory()) continue;
    const std::string name = lower(entry.path().filename().string());
    if (name == structure || name == spaced) return entry.path();
  }
  throw Error(masks_dir.string(), "has no folder \"" + spaced + "\" (or \"" + structure +
                                      "\"); give the SCR masks folder that holds one folder per structure");
}

fs::path mask_file(const fs::path& folder, const std::string& case_id) {
  for (const char* ext : {".gif", ".GIF", ".png"})
    if (fs::exists(folder / (case_id + ext))) return folder / (case_id + ext);
  throw Error((folder / (case_id + ".gif")).string(), "is missing (SCR mask of case " + case_id + "); add it or remove the case's .IMG");
}

// A binary mask (grey > 127), nearest-resampled to size by the centre pixel of each block.
at::Tensor read_mask(const fs::path& path, int64_t size) {
  at::Tensor grey;
  if (lower(path.extension().string()) == ".gif") {
    const auto gif = detail::decode_gif(read_file(path), path);
    grey = torch::from_blob(const_cast<uint8_t*>(gif.grey.data()), {gif.height, gif.width}, torch::kByte).clone();
  } else {
    grey = read_image(path).pixels;
  }
  if (grey.size(0) < size || grey.size(1) < size)
    throw Error(path.string(), "is " + std::to_string(grey.size(0)) + "x" + std::to_string(grey.size(1)) +
                                   ", smaller than the requested size " + std::to_string(size));
  Image mask;
  mask.pixels = (grey > 127).to(torch::kByte);
  return resize_label_map(mask, size, size).pixels;
}

}  // namespace

Dataset import_jsrt(const fs::path& raw_dir, const fs::path& masks_dir, int64_t size, int64_t raw_size) {
  for (const auto& dir : {raw_dir, masks_dir}) {
    if (!fs::exists(dir)) throw Error(dir.string(), "no such folder; check the path");
    if (!fs::is_directory(dir)) throw Error(dir.string(), "is a file, expected a folder");
  }
  if (size <= 0 || size > raw_size) throw Error(raw_dir.string(), "size " + std::to_string(size) + " must be 1.." + std::to_string(raw_size));

  std::vector<std::pair<std::string, fs::path>> raw_files;
  for (const auto& entry : fs::directory_iterator(raw_dir))
    if (entry.is_regular_file() && lower(entry.path().extension().string()) == ".img")
      raw_files.emplace_back(entry.path().stem().string(), entry.path());
  if (raw_files.empty()) throw Error(raw_dir.string(), "holds no .IMG files; give the folder of JSRT raw images");
  // Sorted IDs give the canonical order: JPCLN (nodule) cases before JPCNN.
  std::sort(raw_files.begin(), raw_files.end());

  std::vector<fs::path> folders;
  for (const auto& structure : detail::scr_structures()) folders.push_back(structure_folder(masks_dir, structure));

  Dataset data;
  data.name = "JSRT-SCR";
  data.source = raw_dir.string();
  std::vector<at::Tensor> images, labels;
  for (const auto& [case_id, raw_path] : raw_files) {
    images.push_back(display_to_uint8(read_raw_display(raw_path, raw_size), size));
    auto label = torch::zeros({size, size}, torch::kByte);
    for (size_t s = 0; s < folders.size(); ++s)  // painted 1..5: later structures overwrite
      label.masked_fill_(read_mask(mask_file(folders[s], case_id), size).to(torch::kBool), static_cast<int64_t>(s + 1));
    labels.push_back(label);
    data.cases.push_back(case_id);
  }
  data.images = torch::stack(images);
  data.labels = torch::stack(labels);
  data.classes.entries.emplace_back("background", 0);
  for (size_t s = 0; s < detail::scr_structures().size(); ++s)
    data.classes.entries.emplace_back(detail::scr_structures()[s], static_cast<int>(s + 1));
  // The notebook's split when the standard 247 cases are all there; otherwise one split.
  if (data.cases == detail::jsrt_case_ids()) {
    data.splits["train"].assign(data.cases.begin(), data.cases.begin() + detail::kJsrtTrainCases);
    data.splits["test"].assign(data.cases.begin() + detail::kJsrtTrainCases, data.cases.end());
  } else {
    data.splits["train"] = data.cases;
  }
  data.validate();
  return data;
}

}  // namespace seg::io
