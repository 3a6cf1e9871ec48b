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
  // Resample every case to this size (H, W); otherwise all cases must share one size.
  std::optional<std::pair<int64_t, int64_t>> size;
  bool require_labels = true;
};

// A folder with dataset.json, the dataset.json file itself, or a tensor pack (.pth).
// Validates: every case's image and label exists and is readable, sizes agree, label values
// are in the class table. Throws seg::Error naming the offending file.
Dataset load_dataset(const std::filesystem::path& path, const LoadOptions& options = {});

// Writes images/{case}.png, labels/{case}.png and dataset.json under `dir` (created; the
// dataset.json is written last, atomically, so a folder without it is incomplete).
void write_dataset_folder(const Dataset& data, const std::filesystem::path& dir);

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
