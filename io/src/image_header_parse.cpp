// What every header parser shares: the limits, the shape checks, reading a file in pieces,
// and the size checks of raw and compressed pixel data.
#include "image_header_parse.h"

#include <seg/error.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>

namespace seg::io {
namespace {
std::atomic<int64_t>& default_cap() {
  static std::atomic<int64_t> cap{kDefaultMaxPixels};
  return cap;
}
}  // namespace

int64_t default_max_pixels() { return default_cap().load(); }

void set_default_read_limits(const ReadLimits& limits) {
  if (limits.max_pixels < 1)
    throw UsageError("--max-pixels " + std::to_string(limits.max_pixels) + ": the pixel limit must be at least 1");
  default_cap().store(limits.max_pixels);
}

namespace detail {
namespace fs = std::filesystem;

namespace {
// Deflate's largest expansion: 258 bytes from a 2-bit code is 1032 to 1; the slack covers
// the stream's own headers and a tiny image's fixed costs.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr uint64_t kDeflateSlack = 4096;
constexpr size_t kChunk = 1 << 16;
}  // namespace

std::optional<HeaderFormat> header_format_of_extension(const std::string& extension) {
  if (extension == ".png") return HeaderFormat::png;
  if (extension == ".jpg" || extension == ".jpeg") return HeaderFormat::jpeg;
  if (extension == ".tif" || extension == ".tiff") return HeaderFormat::tiff;
  if (extension == ".bmp") return HeaderFormat::bmp;
  if (extension == ".nii" || extension == ".nii.gz") return HeaderFormat::nifti;
  if (extension == ".nrrd" || extension == ".nhdr") return HeaderFormat::nrrd;
  if (extension == ".mha" || extension == ".mhd") return HeaderFormat::meta;
  return std::nullopt;
}

ImageHeader parse_image_header(const fs::path& path, HeaderFormat format, const ReadLimits& limits) {
  const FileBytes file(path);
  switch (format) {
    case HeaderFormat::png: return png_header(file, limits);
    case HeaderFormat::jpeg: return jpeg_header(file, limits);
    case HeaderFormat::tiff: return tiff_header(file, limits);
    case HeaderFormat::bmp: return bmp_header(file, limits);
    case HeaderFormat::nifti: return nifti_header(file, limits);
    case HeaderFormat::nrrd: return nrrd_header(file, limits);
    case HeaderFormat::meta: return meta_header(file, limits);
  }
  throw Error(path.string(), "unknown header format");
}

std::string dimensions_text(const std::vector<int64_t>& dimensions) {
  std::string text;
  for (size_t i = 0; i < dimensions.size(); ++i) text += (i ? " x " : "") + std::to_string(dimensions[i]);
  return text;
}

void check_image_shape(const fs::path& path, const std::vector<int64_t>& dimensions, int64_t channels,
                       const ReadLimits& limits) {
  if (dimensions.size() < 2) throw Error(path.string(), "has " + std::to_string(dimensions.size()) + " dimension; an image has two");
  for (const int64_t size : dimensions)
    if (size < 1)
      throw Error(path.string(), "declares a size of " + dimensions_text(dimensions) +
                                     " pixels; every size must be at least 1, the header is corrupt");
  size_t last = dimensions.size();
  while (last > 2 && dimensions[last - 1] == 1) --last;
  if (last > 2) {
    const std::string reason = last == 3 ? "is a 3D volume (" + dimensions_text(dimensions) + ", " +
                                               std::to_string(dimensions[2]) + " slices)"
                                         : "has " + std::to_string(last) + " dimensions (" + dimensions_text(dimensions) + ")";
    throw Error(path.string(), reason + "; only 2D images (or a single slice) are supported, extract a slice first");
  }
  if (channels < 1 || channels > 4)
    throw Error(path.string(), "has " + std::to_string(channels) +
                                   " values per pixel; only grey, grey+alpha, RGB and RGBA images are read, extract one channel first");
  const uint64_t pixels = saturating_product(static_cast<uint64_t>(dimensions[0]), static_cast<uint64_t>(dimensions[1]));
  if (pixels > static_cast<uint64_t>(limits.max_pixels))
    throw Error(path.string(), "declares " + std::to_string(dimensions[1]) + " x " + std::to_string(dimensions[0]) + " = " +
                                   (pixels == std::numeric_limits<uint64_t>::max() ? std::string("too many") : std::to_string(pixels)) +
                                   " pixels, more than the limit of " + std::to_string(limits.max_pixels) +
                                   "; if the image is genuine, raise the limit with --max-pixels");
}

FileBytes::FileBytes(const fs::path& path) : path_(path) {
  // O_NONBLOCK: a FIFO given as an image is refused below instead of waiting for a writer
  // (on a regular file the flag changes nothing).
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw Error(path.string(), std::string("cannot be opened (") + std::strerror(errno) + "); check the path and its permissions");
  struct stat info {};
  if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw Error(path.string(), "is not a regular file; give an image file");
  }
  size_ = static_cast<uint64_t>(info.st_size);
}

FileBytes::~FileBytes() {
  if (fd_ >= 0) ::close(fd_);
}

std::string FileBytes::read(uint64_t offset, size_t count) const {
  if (offset >= size_) return {};
  count = static_cast<size_t>(std::min<uint64_t>(count, size_ - offset));
  std::string bytes(count, '\0');
  size_t done = 0;
  while (done < count) {
    const ssize_t n = ::pread(fd_, bytes.data() + done, count - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(path_.string(), std::string("cannot be read (") + std::strerror(errno) + ")");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

uint64_t HeaderFields::unsigned_at(size_t offset, size_t width) const {
  if (offset > bytes_.size() || bytes_.size() - offset < width) malformed(path_, format_, "header cut short");
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    const auto byte = static_cast<uint64_t>(static_cast<unsigned char>(bytes_[offset + (big_endian_ ? i : width - 1 - i)]));
    value = value << 8 | byte;
  }
  return value;
}

float HeaderFields::f32(size_t offset) const {
  const uint32_t bits = u32(offset);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

double HeaderFields::f64(size_t offset) const {
  const uint64_t bits = u64(offset);
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

void malformed(const fs::path& path, const std::string& format, const std::string& what) {
  throw Error(path.string(), "is not a valid " + format + " file (" + what + "); the file is corrupt or not of that type");
}

void truncated(const fs::path& path, const std::string& what) {
  throw Error(path.string(), "is truncated: " + what + "; copy or export the file again");
}

void require_raw_bytes(const fs::path& path, uint64_t present, uint64_t promised) {
  if (present < promised)
    truncated(path, "its header promises " + std::to_string(promised) + " bytes of pixel data but only " +
                        std::to_string(present) + " are there");
}

void require_expandable(const fs::path& path, uint64_t compressed, uint64_t declared) {
  if (declared > saturating_sum(saturating_product(compressed, kMaxDeflateRatio), kDeflateSlack))
    throw Error(path.string(), "declares " + std::to_string(declared) + " bytes of pixel data, more than its " +
                                   std::to_string(compressed) +
                                   " compressed bytes can hold; the file is truncated or its header is wrong, export it again");
}

namespace {
// Inflates `compressed` bytes from `offset` (zlib or gzip, several gzip members in a row
// included) and counts the output, up to `enough`; never holds more than one chunk.
uint64_t inflated_size(const FileBytes& file, uint64_t offset, uint64_t compressed, uint64_t enough) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) throw Error(file.path().string(), "cannot be decompressed (zlib failed to start)");
  std::string output(kChunk, '\0');
  uint64_t produced = 0, position = offset;
  const uint64_t end = offset + std::min(compressed, file.size() - std::min(offset, file.size()));
  std::string input;
  int status = Z_OK;
  while (produced < enough) {
    if (stream.avail_in == 0) {
      if (position >= end) break;
      input = file.read(position, static_cast<size_t>(std::min<uint64_t>(kChunk, end - position)));
      if (input.empty()) break;
      position += input.size();
      stream.next_in = reinterpret_cast<Bytef*>(input.data());
      stream.avail_in = static_cast<uInt>(input.size());
    }
    stream.next_out = reinterpret_cast<Bytef*>(output.data());
    stream.avail_out = static_cast<uInt>(output.size());
    status = inflate(&stream, Z_NO_FLUSH);
    produced += output.size() - stream.avail_out;
    if (status == Z_STREAM_END) {
      // Another gzip member may follow.
      if (stream.avail_in == 0 && position >= end) break;
      if (inflateReset(&stream) != Z_OK) break;
    } else if (status != Z_OK && status != Z_BUF_ERROR) {
      break;  // corrupt data: what came out so far is all there is
    } else if (status == Z_BUF_ERROR && stream.avail_in != 0) {
      break;
    }
  }
  inflateEnd(&stream);
  return produced;
}
}  // namespace

void require_gzip_holds(const FileBytes& file, uint64_t offset, uint64_t declared) {
  const uint64_t compressed = file.size() > offset ? file.size() - offset : 0;
  require_expandable(file.path(), compressed, declared);
  if (compressed >= 18) {
    // The trailer's last four bytes: the uncompressed size modulo 2^32 (RFC 1952).
    const std::string trailer = file.read(file.size() - 4, 4);
    const HeaderFields fields(trailer, false, file.path(), "gzip");
    if (declared < (uint64_t{1} << 32) && fields.u32(0) == declared) return;
  }
  const uint64_t present = inflated_size(file, offset, compressed, declared);
  if (present < declared)
    truncated(file.path(), "its header promises " + std::to_string(declared) + " bytes but its compressed data holds only " +
                               std::to_string(present));
}

void require_zlib_holds(const FileBytes& file, uint64_t offset, uint64_t compressed, uint64_t declared) {
  require_expandable(file.path(), compressed, declared);
  const uint64_t present = inflated_size(file, offset, compressed, declared);
  if (present < declared)
    truncated(file.path(), "its header promises " + std::to_string(declared) + " bytes but its compressed data holds only " +
                               std::to_string(present));
}

std::string gunzip_prefix(const FileBytes& file, uint64_t offset, size_t count) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) throw Error(file.path().string(), "cannot be decompressed (zlib failed to start)");
  std::string output(count, '\0');
  stream.next_out = reinterpret_cast<Bytef*>(output.data());
  stream.avail_out = static_cast<uInt>(count);
  uint64_t position = offset;
  std::string input;
  while (stream.avail_out > 0) {
    input = file.read(position, 4096);
    if (input.empty()) break;
    position += input.size();
    stream.next_in = reinterpret_cast<Bytef*>(input.data());
    stream.avail_in = static_cast<uInt>(input.size());
    const int status = inflate(&stream, Z_NO_FLUSH);
    if (status != Z_OK) break;
  }
  output.resize(count - stream.avail_out);
  inflateEnd(&stream);
  return output;
}

uint64_t saturating_product(uint64_t a, uint64_t b) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return std::numeric_limits<uint64_t>::max();
  return a * b;
}

uint64_t saturating_sum(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max() : a + b;
}

std::string pixel_type_name(bool is_float, bool is_signed, int bytes) {
  if (is_float) return "float" + std::to_string(8 * bytes);
  return std::string(is_signed ? "int" : "uint") + std::to_string(8 * bytes);
}

TextHeader read_text_header(const FileBytes& file, size_t max_bytes) {
  TextHeader header;
  const std::string text = file.read(0, max_bytes);
  size_t start = 0;
  while (start < text.size()) {
    const size_t newline = text.find('\n', start);
    if (newline == std::string::npos) {
      // The last line counts only where the file ends with it (a detached header).
      if (text.size() == file.size()) {
        header.lines.push_back(text.substr(start));
        header.line_ends.push_back(text.size());
        header.end = text.size();
      }
      break;
    }
    std::string line = text.substr(start, newline - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    start = newline + 1;
    header.end = start;
    if (line.empty()) {
      header.ended_by_empty_line = true;
      break;
    }
    header.lines.push_back(std::move(line));
    header.line_ends.push_back(start);
  }
  return header;
}

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

}  // namespace detail
}  // namespace seg::io
