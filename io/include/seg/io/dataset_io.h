#pragma once
// Data sets on disk: a folder with dataset.json, a tensor pack, the notebook's .pth files,
// and the original JSRT distribution (raw .IMG + SCR mask GIFs).
#include <seg/dataset.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace seg::io {

struct LoadOptions {
  // Resample every case to this size (H, W); otherwise to dataset.json's "size" when it gives
  // one, else all cases must share one size.
  std::optional<std::pair<int64_t, int64_t>> size;
  bool require_labels = true;
  // Leave out the cases whose image or label file is missing (listed in Dataset::left_out)
  // instead of refusing the data set.
  bool skip_missing = false;
};

// A folder with dataset.json, the dataset.json file itself, or a tensor pack (.pth).
// Validates: every case's image and label exists (the cases that lack one are named together)
// and is readable, sizes agree, label values are in the class table. Images keep their pixel
// type (a set of several types gets the widest). Throws seg::Error naming the offending file.
Dataset load_dataset(const std::filesystem::path& path, const LoadOptions& options = {});

// Every case resampled to H x W: images by area or bilinear, labels by nearest neighbour; the
// geometry's spacing scaled.
Dataset resample_dataset(Dataset data, int64_t height, int64_t width);

// Writes images/{case}<extension>, labels/{case}<extension> (uint8) and dataset.json under
// `dir` (created; the dataset.json is written last, atomically, so a folder without it is
// incomplete). `extension` is ".png", ".tif", ".nii", ".nii.gz", ".nrrd" or ".mha"; images of
// a type PNG or TIFF cannot hold as they were read (int16, int32, float32) go to ".nii.gz".
// Images and labels keep the cases' geometry where the data set has one.
void write_dataset_folder(const Dataset& data, const std::filesystem::path& dir, const std::string& extension = ".png");

// The extension write_dataset_folder gives the images of `data` when asked for `extension`.
std::string image_extension_for(const Dataset& data, const std::string& extension);

// The course notebook's files: images_pth holds {"JSRT_img0": N x H x W float, z-normalised},
// masks_pth an N x C x H x W one-hot tensor (label = channel + 1). Images are mapped to
// uint8 by a linear stretch of the global min..max; the split is the notebook's (first 160
// train, rest test, or first `train_count`).
Dataset import_notebook_files(const std::filesystem::path& images_pth,
                              const std::filesystem::path& masks_pth, int64_t train_count = 160);
// And back: z-normalised float images and one-hot masks, as the notebook loads them.
void export_notebook_files(const Dataset& data, const std::filesystem::path& images_pth,
                           const std::filesystem::path& masks_pth);

// The JSRT distribution: raw_dir holds <case>.IMG (2048 x 2048, 12-bit big-endian, no header),
// masks_dir the SCR folders ("right lung", ... or with underscores) of <case>.gif masks.
// Images are shown as 4095 - value, area-averaged to size x size and stored as 8 bit; labels
// painted in the order 1..5 (later overwrites earlier) and resampled by nearest neighbour
// (the centre pixel of each block). `raw_size` is the raw edge (2048 for real files).
Dataset import_jsrt(const std::filesystem::path& raw_dir, const std::filesystem::path& masks_dir,
                    int64_t size = 256, int64_t raw_size = 2048);

}  // namespace seg::io
