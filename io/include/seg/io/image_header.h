#pragma once
// What an image file declares, read from its header alone (plus the few bytes that show the
// file is complete): sizes are checked before any pixel memory is allocated, and a batch tool
// can check every input before it writes anything. read_image and read_label_map call it first.
#include <cstdint>
#include <filesystem>
#include <string>

namespace seg::io {

// 2^26 pixels (8192 x 8192): above the largest detector film.
inline constexpr int64_t kDefaultMaxPixels = int64_t{1} << 26;

// The process-wide cap that ReadLimits{} starts from: kDefaultMaxPixels unless
// set_default_read_limits changed it (the tools' --max-pixels does).
int64_t default_max_pixels();

struct ReadLimits {
  int64_t max_pixels = default_max_pixels();  // height x width; larger files are refused
};

// Sets the limits that read_image, read_label_map and ReadLimits{} use from now on, in every
// thread. Throws seg::UsageError for a cap below 1.
void set_default_read_limits(const ReadLimits& limits);

struct ImageHeader {
  int64_t height = 0, width = 0;
  int channels = 1;        // values per pixel in the file: 1 grey, 2 grey+alpha, 3 colour, 4 colour+alpha
  std::string pixel_type;  // as stored: "uint8", "int8", "uint16", "int16", "uint32", "int32",
                           // "uint64", "int64", "float32", "float64"
  bool has_spacing = false;  // the format carries a physical pixel spacing (NIfTI, NRRD, MHA, DICOM)
  std::string format;        // "PNG", "JPEG", "TIFF", "BMP", "NIfTI-1", "NIfTI-2", "NRRD", "MetaImage", "DICOM"
};

// Reads the header of any file read_image reads (chosen by extension, as read_image does).
// Throws seg::Error "<path>: <what is wrong>; <what to do>" for: a missing or unreadable file,
// a malformed header, more than two dimensions with more than one slice, more than four values
// per pixel, more pixels than limits.max_pixels, raw pixel data shorter than the header
// promises, compressed pixel data too short to expand to the declared size, and, where it is
// cheap to see, an incomplete file (PNG without IEND, JPEG without its end marker, a gzip
// stream shorter than the header promises).
ImageHeader read_image_header(const std::filesystem::path& path, const ReadLimits& limits = {});

}  // namespace seg::io
