#pragma once
// Reading and writing 2D images and label maps, chosen by file extension:
// PNG (8/16 bit), JPEG, TIFF, BMP through OpenCV; NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr),
// MetaImage (.mha, .mhd) and DICOM (.dcm, or a file with no extension) through ITK.
#include <seg/image.h>

#include <filesystem>
#include <string>
#include <vector>

namespace seg::io {

struct ReadOptions {
  bool to_gray = false;  // colour inputs become grey only when asked; otherwise an error
  bool allow_non_finite = false;  // NaN or Inf pixels (float images): an error unless allowed
};

// Reads a single-channel image (or a colour one converted to grey with to_gray).
// Throws seg::Error "<path>: <what is wrong>; <what to do>" on any failure, NaN or Inf
// pixels included (unless options.allow_non_finite).
Image read_image(const std::filesystem::path& path, const ReadOptions& options = {});

// Reads a label map: one channel, integer values 0..255, returned as kByte.
Image read_label_map(const std::filesystem::path& path);

// Writes by extension (.png, .nii, .nii.gz, .nrrd, .mha), atomically. PNG keeps 8 or 16
// bits (a float image is an error for PNG: it has no float type); NIfTI/NRRD/MHA keep the
// pixel type, spacing, origin and direction.
void write_image(const std::filesystem::path& path, const Image& image);
// A label map (kByte, H x W) with the given geometry: PNG 8-bit or NIfTI uint8.
void write_label_map(const std::filesystem::path& path, const Image& labels);

// True when the extension is one this module reads.
bool is_image_path(const std::filesystem::path& path);
// "JPCLN001" for ".../JPCLN001.png" and for ".../JPCLN001.nii.gz".
std::string case_id_of(const std::filesystem::path& path);
// The image files in `folder` (not recursively), sorted: every entry but a folder with an
// extension this module reads (a broken link among them, for the reader to refuse); hidden
// files (temporaries of a run in progress among them) are skipped.
std::vector<std::filesystem::path> image_files_in(const std::filesystem::path& folder);

// Resampling to H x W. Images: area averaging when shrinking, bilinear when enlarging
// (or `linear` forced); labels: nearest neighbour. Geometry's spacing is scaled.
enum class Interpolation { automatic, area, linear, nearest };
Image resize_image(const Image& image, int64_t height, int64_t width,
                   Interpolation interpolation = Interpolation::automatic);
Image resize_label_map(const Image& labels, int64_t height, int64_t width);

}  // namespace seg::io
