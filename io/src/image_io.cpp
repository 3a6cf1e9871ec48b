// Image files by extension: OpenCV for PNG/JPEG/TIFF/BMP, ITK (itk_io.cpp) for the medical
// formats; resampling with cv::resize.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dicom_seg.h>
#include <seg/io/image_header.h>
#include <seg/io/image_io.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "io_internal.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace detail {

std::string full_extension(const fs::path& path) {
  std::string name = path.filename().string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* double_ext : {".nii.gz", ".tar.gz"})
    if (name.size() > std::strlen(double_ext) && name.compare(name.size() - std::strlen(double_ext), std::string::npos, double_ext) == 0)
      return double_ext;
  const auto dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return "";
  return name.substr(dot);
}

FileKind kind_of_extension(const std::string& extension) {
  for (const char* e : {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
    if (extension == e) return FileKind::opencv;
  for (const char* e : {".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ""})
    if (extension == e) return FileKind::itk;
  return FileKind::unknown;
}

namespace {
// Several threads may decode at once: the first to mute descriptor 2 saves it, the last to
// finish puts it back (each saving its own copy would let one restore another's /dev/null).
std::mutex quiet_mutex;
int quiet_depth = 0;
int quiet_saved = -1;
}  // namespace

QuietStderr::QuietStderr() {
  const std::lock_guard<std::mutex> lock(quiet_mutex);
  if (quiet_depth++ > 0) return;
  std::fflush(stderr);
  quiet_saved = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (quiet_saved >= 0 && null >= 0) ::dup2(null, STDERR_FILENO);
  if (null >= 0) ::close(null);
}

QuietStderr::~QuietStderr() {
  const std::lock_guard<std::mutex> lock(quiet_mutex);
  if (--quiet_depth > 0) return;
  std::fflush(stderr);
  if (quiet_saved >= 0) {
    ::dup2(quiet_saved, STDERR_FILENO);
    ::close(quiet_saved);
    quiet_saved = -1;
  }
}

void require_readable_file(const fs::path& path) {
  if (!fs::exists(path)) throw Error(path.string(), "no such file; check the path");
  if (fs::is_directory(path)) throw Error(path.string(), "is a folder, expected an image file");
}

void unsupported_extension(const fs::path& path) {
  throw Error(path.string(), "unsupported file type \"" + full_extension(path) +
                                 "\"; use .png, .jpg, .tif, .bmp, .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd or .dcm");
}

cv::Mat mat_of(const at::Tensor& pixels) {
  const auto t = pixels.contiguous();
  int depth;
  switch (t.scalar_type()) {
    case at::kByte: depth = CV_8U; break;
    case at::kShort: depth = CV_16S; break;
    case at::kInt: depth = CV_32S; break;
    case at::kFloat: depth = CV_32F; break;
    case at::kDouble: depth = CV_64F; break;
    default: throw Error("image", std::string("unsupported pixel type ") + c10::toString(t.scalar_type()));
  }
  const int channels = t.dim() == 3 ? static_cast<int>(t.size(2)) : 1;
  cv::Mat view(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_MAKETYPE(depth, channels),
               t.data_ptr());
  return view.clone();
}

at::Tensor tensor_of(const cv::Mat& input) {
  cv::Mat mat = input.isContinuous() ? input : input.clone();
  at::ScalarType type;
  switch (mat.depth()) {
    case CV_8U: type = at::kByte; break;
    case CV_16S: type = at::kShort; break;
    case CV_16U: {  // LibTorch 1.13 has no uint16: widen to int32
      cv::Mat widened;
      mat.convertTo(widened, CV_MAKETYPE(CV_32S, mat.channels()));
      return tensor_of(widened);
    }
    case CV_32S: type = at::kInt; break;
    case CV_32F: type = at::kFloat; break;
    case CV_64F: type = at::kDouble; break;
    default: {
      cv::Mat as_float;
      mat.convertTo(as_float, CV_MAKETYPE(CV_32F, mat.channels()));
      return tensor_of(as_float);
    }
  }
  std::vector<int64_t> shape{mat.rows, mat.cols};
  if (mat.channels() > 1) shape.push_back(mat.channels());
  return torch::from_blob(mat.data, shape, type).clone();
}

}  // namespace detail

namespace {
using detail::FileKind;
using detail::QuietStderr;
using detail::unsupported_extension;

std::string pixel_type_of_depth(int depth) {
  switch (depth) {
    case CV_8U: return "uint8";
    case CV_8S: return "int8";
    case CV_16U: return "uint16";
    case CV_16S: return "int16";
    case CV_32S: return "int32";
    case CV_32F: return "float32";
    default: return "float64";
  }
}

// Whether a picture's colour channels agree (a grey image stored as colour: a grey palette
// PNG, say) and whether its alpha channel, if it has one, is opaque everywhere. OpenCV orders
// the channels grey, grey+alpha (2), BGR (3) or BGRA (4).
struct ChannelFacts {
  bool grey = true;
  bool opaque = true;
};

ChannelFacts channel_facts(const cv::Mat& mat) {
  std::vector<cv::Mat> planes;
  cv::split(mat, planes);
  ChannelFacts facts;
  const size_t colours = planes.size() >= 3 ? 3 : 1;
  for (size_t c = 1; c < colours && facts.grey; ++c) facts.grey = cv::countNonZero(planes[c] != planes[0]) == 0;
  if (planes.size() == 2 || planes.size() == 4) {
    double min_alpha, max_alpha;
    cv::minMaxLoc(planes.back(), &min_alpha, &max_alpha);
    facts.opaque = min_alpha >= (mat.depth() == CV_16U ? 65535.0 : 255.0);
  }
  return facts;
}

Image read_with_opencv(const fs::path& path, const ImageHeader& header, bool to_gray) {
  cv::Mat mat;
  try {
    QuietStderr quiet;
    mat = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw Error(path.string(), std::string("cannot be decoded (") + e.err + "); the file is corrupt or truncated");
  }
  if (mat.empty())
    throw Error(path.string(), "cannot be decoded as " + detail::full_extension(path) +
                                   "; the file is corrupt, truncated or not of that type");
  const std::string pixel_type = pixel_type_of_depth(mat.depth());
  // OpenCV drops a TIFF's alpha beside one grey sample, so its transparency cannot be seen.
  const bool alpha_dropped = (header.channels == 2 || header.channels == 4) && mat.channels() % 2 == 1;
  if (alpha_dropped && !to_gray)
    throw Error(path.string(), "has an alpha channel that cannot be checked for transparency here; flatten it or pass --gray");
  if (mat.channels() > 1) {
    const ChannelFacts facts = channel_facts(mat);
    if (!facts.grey && !to_gray)
      throw Error(path.string(), "is a colour image (" + std::to_string(mat.channels()) +
                                     " channels); convert it to grey with --gray");
    if (!facts.opaque && !to_gray)
      throw Error(path.string(), "has transparency (an alpha channel that is not opaque); flatten it or pass --gray");
    cv::Mat grey;
    if (facts.grey) {
      cv::extractChannel(mat, grey, 0);
    } else {
      cv::cvtColor(mat, grey, mat.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
    }
    mat = grey;
  }
  Image image;
  image.pixels = detail::tensor_of(mat);
  image.pixel_type = pixel_type;
  return image;
}

void write_with_opencv(const fs::path& path, const Image& image) {
  const auto& pixels = image.pixels;
  if (pixels.dim() != 2)
    throw Error(path.string(), "only single-channel images are written here; draw pictures with seg::viz::write_png");
  cv::Mat mat;
  const auto type = pixels.scalar_type();
  if (type == at::kByte) {
    mat = detail::mat_of(pixels);
  } else if (type == at::kShort || type == at::kInt) {
    // PNG/TIFF hold 16 bit unsigned; refuse what would not fit instead of clipping.
    const auto min_value = pixels.min().item<int64_t>(), max_value = pixels.max().item<int64_t>();
    if (min_value < 0 || max_value > 65535)
      throw Error(path.string(), "pixel values " + std::to_string(min_value) + ".." + std::to_string(max_value) +
                                     " do not fit 16-bit " + detail::full_extension(path) + "; write .nii.gz instead");
    detail::mat_of(pixels.to(at::kInt)).convertTo(mat, CV_16U);
  } else {
    throw Error(path.string(), "a " + image.pixel_type + " image cannot be stored in " +
                                   detail::full_extension(path) + " without losing values; write .nii.gz, or rescale to 8 bit");
  }
  if (mat.depth() == CV_16U) {
    const auto ext = detail::full_extension(path);
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".bmp")
      throw Error(path.string(), "16-bit pixels cannot be stored in " + ext + "; write .png or .tif");
  }
  // Encoded in memory and written by our own checked writer: OpenCV's file writer does not
  // report a full disk.
  std::vector<uchar> bytes;
  try {
    if (!cv::imencode(detail::full_extension(path), mat, bytes)) throw Error(path.string(), "cannot encode the image");
  } catch (const cv::Exception& e) {
    throw Error(path.string(), std::string("cannot encode the image: ") + e.err);
  }
  write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace

bool is_image_path(const fs::path& path) {
  const auto ext = detail::full_extension(path);
  return !ext.empty() && detail::kind_of_extension(ext) != FileKind::unknown;
}

std::string case_id_of(const fs::path& path) {
  const std::string name = path.filename().string();
  const auto ext = detail::full_extension(path);
  return name.substr(0, name.size() - ext.size());
}

std::vector<fs::path> image_files_in(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    // Every entry named as an image that is not a folder: a broken link or a FIFO is then refused
    // by the reader with its reason, not left out of the run in silence.
    std::error_code ec;
    if (!name.empty() && name[0] != '.' && !entry.is_directory(ec) && is_image_path(entry.path()))
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

namespace {
// The pixels of a file whose header read_image_header has checked.
Image decode_image(const fs::path& path, const ImageHeader& header, const ReadOptions& options) {
  Image image = detail::kind_of_extension(detail::full_extension(path)) == FileKind::opencv
                    ? read_with_opencv(path, header, options.to_gray)
                    : detail::read_with_itk(path, options.to_gray);
  if (!options.allow_non_finite && image.pixels.is_floating_point()) {
    const int64_t nan = image.pixels.isnan().sum().item<int64_t>();
    const int64_t inf = image.pixels.isinf().sum().item<int64_t>();
    if (nan + inf > 0)
      throw Error(path.string(), "has " + std::to_string(nan) + " NaN and " + std::to_string(inf) +
                                     " Inf pixels; replace them with finite values first");
  }
  return image;
}
}  // namespace

Image read_image(const fs::path& path, const ReadOptions& options) {
  if (is_dicom_segmentation(path)) return read_dicom_segmentation(path);  // its label map is its image
  return decode_image(path, read_image_header(path), options);
}

Image read_label_map(const fs::path& path) {
  // A DICOM SEG stores a frame per segment, which GDCM's image reader would take for slices.
  if (is_dicom_segmentation(path)) return read_dicom_segmentation(path);
  const ImageHeader header = read_image_header(path);
  Image image;
  try {
    image = decode_image(path, header, {});
    // A palette PNG's indices are its labels, also where its palette is grey and so decodes to
    // one channel of grey levels (index 1 drawn as 255).
    if (detail::full_extension(path) == ".png")
      if (auto indices = detail::read_png_palette_indices(path); indices.defined()) {
        image.pixels = indices;
        image.pixel_type = "uint8";
      }
  } catch (const Error&) {
    // A palette PNG (as PIL writes label maps) with colours does not decode to one channel.
    if (detail::full_extension(path) != ".png") throw;
    // ITK's PNG reader abort()s on a damaged file (libpng error without setjmp): only a file
    // OpenCV decodes whole goes there.
    {
      QuietStderr quiet;
      if (cv::imread(path.string(), cv::IMREAD_UNCHANGED).empty()) throw;
    }
    auto indices = detail::read_png_palette_indices(path);
    if (!indices.defined()) throw;
    image.pixels = indices;
    image.pixel_type = "uint8";
  }
  auto& pixels = image.pixels;
  if (pixels.scalar_type() != at::kByte) {
    if (pixels.is_floating_point() && !torch::equal(pixels, pixels.round()))
      throw Error(path.string(), "holds non-integer values, so it is not a label map; pass an integer image");
    const double min_value = pixels.min().item<double>(), max_value = pixels.max().item<double>();
    if (min_value < 0 || max_value > 255)
      throw Error(path.string(), "label values range " + std::to_string(static_cast<int64_t>(min_value)) + ".." +
                                     std::to_string(static_cast<int64_t>(max_value)) +
                                     ", outside 0..255; a label map holds small non-negative integers");
    pixels = pixels.to(at::kByte);
  }
  return image;
}

void write_image(const fs::path& path, const Image& image) {
  if (!image.pixels.defined() || image.pixels.dim() < 2)
    throw Error(path.string(), "nothing to write: the image is empty");
  const auto ext = detail::full_extension(path);
  switch (detail::kind_of_extension(ext)) {
    case FileKind::opencv: return write_with_opencv(path, image);
    case FileKind::itk:
      if (ext == ".dcm" || ext.empty())
        throw Error(path.string(), "writing DICOM is not supported; write .png, .nii.gz, .nrrd or .mha");
      return detail::write_with_itk(path, image);
    default: unsupported_extension(path);
  }
}

void write_label_map(const fs::path& path, const Image& labels) {
  if (!labels.pixels.defined() || labels.pixels.dim() != 2 || labels.pixels.scalar_type() != at::kByte)
    throw Error(path.string(), "a label map must be an H x W uint8 tensor");
  Image copy = labels;
  copy.pixel_type = "uint8";
  write_image(path, copy);
}

namespace {
// Resampling keeps the physical extent: spacing scales with the size, and the first pixel's
// centre moves to the centre of the block it now covers.
Geometry resampled_geometry(const Geometry& geometry, int64_t old_h, int64_t old_w, int64_t new_h, int64_t new_w) {
  Geometry out = geometry;
  const double factor_x = static_cast<double>(old_w) / static_cast<double>(new_w);
  const double factor_y = static_cast<double>(old_h) / static_cast<double>(new_h);
  out.spacing = {geometry.spacing[0] * factor_x, geometry.spacing[1] * factor_y};
  const double shift_x = geometry.spacing[0] * (factor_x - 1) / 2;
  const double shift_y = geometry.spacing[1] * (factor_y - 1) / 2;
  const auto& d = geometry.direction;
  out.origin = {geometry.origin[0] + d[0] * shift_x + d[1] * shift_y,
                geometry.origin[1] + d[2] * shift_x + d[3] * shift_y};
  return out;
}

void check_size(int64_t height, int64_t width) {
  if (height <= 0 || width <= 0 || height > 65536 || width > 65536)
    throw Error("resize", "size " + std::to_string(height) + "x" + std::to_string(width) + " is not a sensible image size");
}
}  // namespace

Image resize_image(const Image& image, int64_t height, int64_t width, Interpolation interpolation) {
  check_size(height, width);
  if (height == image.height() && width == image.width()) return image;
  if (interpolation == Interpolation::nearest) return resize_label_map(image, height, width);
  if (interpolation == Interpolation::automatic)
    interpolation = (height <= image.height() && width <= image.width()) ? Interpolation::area : Interpolation::linear;
  const int flag = interpolation == Interpolation::area ? cv::INTER_AREA : cv::INTER_LINEAR;
  // cv::resize has no 32-bit integer path: resample in float and round back.
  const auto type = image.pixels.scalar_type();
  const bool via_float = type == at::kInt;
  cv::Mat source = detail::mat_of(via_float ? image.pixels.to(at::kFloat) : image.pixels);
  cv::Mat resized;
  cv::resize(source, resized, cv::Size(static_cast<int>(width), static_cast<int>(height)), 0, 0, flag);
  Image out;
  out.pixels = detail::tensor_of(resized);
  if (via_float) out.pixels = out.pixels.round().to(type);
  out.pixel_type = image.pixel_type;
  out.geometry = resampled_geometry(image.geometry, image.height(), image.width(), height, width);
  return out;
}

Image resize_label_map(const Image& labels, int64_t height, int64_t width) {
  check_size(height, width);
  if (height == labels.height() && width == labels.width()) return labels;
  // Nearest neighbour by the centre of each output pixel: for an integer factor f this picks
  // source pixel i*f + f/2, the same as PIL's NEAREST (mask[f/2::f, f/2::f]).
  auto source_index = [](int64_t out_size, int64_t in_size) {
    std::vector<int64_t> index(static_cast<size_t>(out_size));
    for (int64_t i = 0; i < out_size; ++i)
      index[static_cast<size_t>(i)] = std::min<int64_t>(in_size - 1, ((2 * i + 1) * in_size) / (2 * out_size));
    return torch::tensor(index, torch::kLong);
  };
  Image out;
  out.pixels = labels.pixels.index_select(0, source_index(height, labels.height()))
                   .index_select(1, source_index(width, labels.width()))
                   .contiguous();
  out.pixel_type = labels.pixel_type;
  out.geometry = resampled_geometry(labels.geometry, labels.height(), labels.width(), height, width);
  return out;
}

}  // namespace seg::io
