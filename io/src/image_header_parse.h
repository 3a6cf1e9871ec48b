#pragma once
// Image headers parsed in plain C++ and zlib (no ITK, OpenCV or LibTorch), so that the
// libFuzzer target fuzz/fuzz_image_header.cpp builds them with clang. DICOM goes through
// GDCM instead (image_header.cpp). Never installed.
#include <seg/io/image_header.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace seg::io::detail {

enum class HeaderFormat { png, jpeg, tiff, bmp, nifti, nrrd, meta };

// The parser for a lower-case extension (".png", ".nii.gz", ".nhdr", ...); nullopt for DICOM
// and for extensions read_image does not read.
std::optional<HeaderFormat> header_format_of_extension(const std::string& extension);

// Parses and checks the header of a file of that format (read_image_header's contract).
ImageHeader parse_image_header(const std::filesystem::path& path, HeaderFormat format, const ReadLimits& limits);

// The checks every header goes through, DICOM's too: `dimensions` (x, y, then slices and
// beyond) all at least 1 and all 1 after the second, at most four values per pixel, and at
// most limits.max_pixels pixels.
void check_image_shape(const std::filesystem::path& path, const std::vector<int64_t>& dimensions, int64_t channels,
                       const ReadLimits& limits);

// ---- What the format parsers (image_header_*.cpp) share ----

// A regular file's bytes, read where asked, never whole.
class FileBytes {
 public:
  explicit FileBytes(const std::filesystem::path& path);
  ~FileBytes();
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Up to `count` bytes from `offset`; fewer where the file ends.
  std::string read(uint64_t offset, size_t count) const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Numbers at fixed offsets of a header held in memory, in the file's byte order. Reading past
// its end throws malformed(path, format, "header cut short").
class HeaderFields {
 public:
  HeaderFields(const std::string& bytes, bool big_endian, const std::filesystem::path& path, const char* format)
      : bytes_(bytes), big_endian_(big_endian), path_(path), format_(format) {}
  uint64_t unsigned_at(size_t offset, size_t width) const;  // width 1, 2, 4 or 8 bytes
  uint8_t u8(size_t offset) const { return static_cast<uint8_t>(unsigned_at(offset, 1)); }
  uint16_t u16(size_t offset) const { return static_cast<uint16_t>(unsigned_at(offset, 2)); }
  uint32_t u32(size_t offset) const { return static_cast<uint32_t>(unsigned_at(offset, 4)); }
  uint64_t u64(size_t offset) const { return unsigned_at(offset, 8); }
  int16_t i16(size_t offset) const { return static_cast<int16_t>(u16(offset)); }
  int32_t i32(size_t offset) const { return static_cast<int32_t>(u32(offset)); }
  int64_t i64(size_t offset) const { return static_cast<int64_t>(u64(offset)); }
  float f32(size_t offset) const;
  double f64(size_t offset) const;
  size_t size() const { return bytes_.size(); }

 private:
  const std::string& bytes_;
  bool big_endian_;
  const std::filesystem::path& path_;
  const char* format_;
};

// "<path>: is not a valid <format> file (<what>); the file is corrupt or not of that type"
[[noreturn]] void malformed(const std::filesystem::path& path, const std::string& format, const std::string& what);
// "<path>: is truncated: <what>; copy or export the file again"
[[noreturn]] void truncated(const std::filesystem::path& path, const std::string& what);

// Raw pixel data: `present` bytes where the header promises `promised`.
void require_raw_bytes(const std::filesystem::path& path, uint64_t present, uint64_t promised);
// Deflate expands at most about 1032-fold: `compressed` bytes that cannot hold `declared`
// bytes are a cut file or a lying header.
void require_expandable(const std::filesystem::path& path, uint64_t compressed, uint64_t declared);
// The gzip data from `offset` to the end of the file expands to at least `declared` bytes:
// its trailer's size field says so, or, where that disagrees, decompressing it (streamed,
// never held whole) does.
void require_gzip_holds(const FileBytes& file, uint64_t offset, uint64_t declared);
// The zlib (or gzip) stream of `compressed` bytes at `offset` expands to at least `declared`
// bytes (decompressed streamed, stopping at `declared`).
void require_zlib_holds(const FileBytes& file, uint64_t offset, uint64_t compressed, uint64_t declared);
// The first `count` decompressed bytes of the gzip data at `offset` (fewer when it is shorter).
std::string gunzip_prefix(const FileBytes& file, uint64_t offset, size_t count);

// a * b and a + b, or UINT64_MAX where that overflows.
uint64_t saturating_product(uint64_t a, uint64_t b);
uint64_t saturating_sum(uint64_t a, uint64_t b);
// "int16" for (signed, 2 bytes), "float32" for (float, 4 bytes), ...
std::string pixel_type_name(bool is_float, bool is_signed, int bytes);
// "256 x 256 x 3"
std::string dimensions_text(const std::vector<int64_t>& dimensions);

// The leading text lines of a text header (NRRD, MetaImage): up to the first empty line or
// `max_bytes`, whichever comes first. line_ends[i] is the offset just after lines[i]; `end`
// the offset after the last line read (the empty line included, where there is one).
struct TextHeader {
  std::vector<std::string> lines;
  std::vector<uint64_t> line_ends;
  uint64_t end = 0;
  bool ended_by_empty_line = false;
};
TextHeader read_text_header(const FileBytes& file, size_t max_bytes);
// Without leading and trailing spaces, tabs and carriage returns.
std::string trimmed(const std::string& text);

// One parser per format (image_header_raster.cpp, image_header_medical.cpp).
ImageHeader png_header(const FileBytes& file, const ReadLimits& limits);
ImageHeader jpeg_header(const FileBytes& file, const ReadLimits& limits);
ImageHeader tiff_header(const FileBytes& file, const ReadLimits& limits);
ImageHeader bmp_header(const FileBytes& file, const ReadLimits& limits);
ImageHeader nifti_header(const FileBytes& file, const ReadLimits& limits);
ImageHeader nrrd_header(const FileBytes& file, const ReadLimits& limits);
ImageHeader meta_header(const FileBytes& file, const ReadLimits& limits);
// The transfer syntax UID of a DICOM file's meta header; "" where it has none (the default,
// implicit VR little endian, is uncompressed).
std::string dicom_transfer_syntax(const FileBytes& file);

}  // namespace seg::io::detail
