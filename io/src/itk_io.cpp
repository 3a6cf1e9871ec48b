// The medical formats through ITK: NIfTI, NRRD, MetaImage, DICOM (and PNG palettes).
#include <seg/error.h>
#include <seg/fs.h>

#include <itkGDCMImageIO.h>
#include <itkGDCMImageIOFactory.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOFactory.h>
#include <itkMetaImageIOFactory.h>
#include <itkNiftiImageIOFactory.h>
#include <itkNrrdImageIOFactory.h>
#include <itkPNGImageIO.h>
#include <itkPNGImageIOFactory.h>
#include <torch/torch.h>

#include <unistd.h>

#include <atomic>
#include <limits>
#include <cstdlib>
#include <mutex>
#include <type_traits>

#include "image_header_parse.h"
#include "io_internal.h"

namespace seg::io::detail {
namespace fs = std::filesystem;

namespace {

void register_itk_formats() {
  // ITK finds no format unless its factories are registered; once per process.
  static std::once_flag once;
  std::call_once(once, [] {
    itk::NiftiImageIOFactory::RegisterOneFactory();
    itk::NrrdImageIOFactory::RegisterOneFactory();
    itk::MetaImageIOFactory::RegisterOneFactory();
    itk::GDCMImageIOFactory::RegisterOneFactory();
    itk::PNGImageIOFactory::RegisterOneFactory();
    // ITK's warnings are multi-line notices on stderr for every file (GDCM's "Converting from
    // MONOCHROME1 to MONOCHROME2" for each CR film, say); our errors say what matters.
    itk::Object::GlobalWarningDisplayOff();
  });
}

// The first line of ITK's description, without "ITK ERROR: <class>(0x...): ".
std::string first_line(const itk::ExceptionObject& e) {
  std::string text = e.GetDescription();
  const auto start = text.find_first_not_of(" \n");
  text = text.substr(start == std::string::npos ? 0 : start);
  text = text.substr(0, text.find('\n'));
  const auto marker = text.find("): ");
  if (text.rfind("ITK ERROR", 0) == 0 && marker != std::string::npos) text = text.substr(marker + 3);
  return text;
}

// niftilib, given "a.nii.gz", opens "a.nii" when both exist (and the other way round).
// Such a file is read through a link of its own name in a private folder.
class UnambiguousNiftiPath {
 public:
  explicit UnambiguousNiftiPath(const fs::path& path) : path_(path) {
    const std::string ext = full_extension(path);
    if (ext != ".nii" && ext != ".nii.gz") return;
    const std::string name = path.filename().string();
    const std::string stem = name.substr(0, name.size() - ext.size());
    const std::string sibling = stem + (ext == ".nii" ? name.substr(name.size() - 4) + ".gz" : ".nii");
    if (!fs::exists(path.parent_path() / sibling) && !fs::exists(path.parent_path() / (stem + ".hdr"))) return;
    std::error_code ec;
    folder_ = fs::temp_directory_path() / ("seg-read-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::create_directories(folder_, ec);
    const fs::path link = folder_ / ("image" + ext);
    fs::create_symlink(fs::absolute(path), link, ec);
    if (!ec) path_ = link;
  }
  ~UnambiguousNiftiPath() {
    std::error_code ec;
    if (!folder_.empty()) fs::remove_all(folder_, ec);
  }
  UnambiguousNiftiPath(const UnambiguousNiftiPath&) = delete;
  UnambiguousNiftiPath& operator=(const UnambiguousNiftiPath&) = delete;
  const fs::path& path() const { return path_; }

 private:
  static std::atomic<int>& counter() {
    static std::atomic<int> count{0};
    return count;
  }
  fs::path path_;
  fs::path folder_;
};

// LibTorch 1.13 has no uint16: such buffers go through int32.
template <typename Pixel>
at::Tensor tensor_of_buffer(const Pixel* buffer, int64_t height, int64_t width) {
  if constexpr (std::is_same_v<Pixel, uint16_t>) {
    auto out = torch::empty({height, width}, torch::kInt);
    std::copy_n(buffer, height * width, out.data_ptr<int32_t>());
    return out;
  } else {
    return torch::from_blob(const_cast<Pixel*>(buffer), {height, width}, c10::CppTypeToScalarType<Pixel>::value).clone();
  }
}

template <typename Pixel>
void copy_to_buffer(const at::Tensor& pixels, Pixel* buffer) {
  if constexpr (std::is_same_v<Pixel, uint16_t>) {
    const auto widened = pixels.to(torch::kInt).contiguous();
    const int32_t* source = widened.data_ptr<int32_t>();
    for (int64_t i = 0; i < widened.numel(); ++i) buffer[i] = static_cast<uint16_t>(source[i]);
  } else {
    const auto converted = pixels.to(c10::CppTypeToScalarType<Pixel>::value).contiguous();
    std::copy_n(converted.template data_ptr<Pixel>(), converted.numel(), buffer);
  }
}

template <typename Pixel>
Image read_typed(const fs::path& path, const fs::path& file_to_open, itk::ImageIOBase* image_io, at::ScalarType tensor_type) {
  // Read as 3D so that a 2D file and a 3D file of one slice take the same path.
  using ImageType = itk::Image<Pixel, 3>;
  auto reader = itk::ImageFileReader<ImageType>::New();
  reader->SetFileName(file_to_open.string());
  reader->SetImageIO(image_io);
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw Error(path.string(), "cannot be read (" + first_line(e) + "); the file is corrupt or truncated");
  }
  typename ImageType::Pointer itk_image = reader->GetOutput();
  const auto size = itk_image->GetLargestPossibleRegion().GetSize();
  if (size[2] != 1)
    throw Error(path.string(), "is a 3D volume of " + std::to_string(size[2]) +
                                   " slices; only 2D images (or one slice) are supported, extract a slice first");
  const auto height = static_cast<int64_t>(size[1]), width = static_cast<int64_t>(size[0]);
  Image image;
  image.pixels = tensor_of_buffer(itk_image->GetBufferPointer(), height, width).to(tensor_type);
  const auto spacing = itk_image->GetSpacing();
  const auto origin = itk_image->GetOrigin();
  const auto direction = itk_image->GetDirection();
  image.geometry.spacing = {spacing[0], spacing[1]};
  image.geometry.origin = {origin[0], origin[1]};
  image.geometry.direction = {direction(0, 0), direction(0, 1), direction(1, 0), direction(1, 1)};
  image.geometry.has_spacing = true;
  return image;
}

template <typename Pixel>
void write_typed(const fs::path& target, const fs::path& tmp, const Image& image) {
  using ImageType = itk::Image<Pixel, 2>;
  auto itk_image = ImageType::New();
  typename ImageType::RegionType region;
  region.SetSize({{static_cast<itk::SizeValueType>(image.width()), static_cast<itk::SizeValueType>(image.height())}});
  itk_image->SetRegions(region);
  itk_image->Allocate();
  copy_to_buffer(image.pixels, itk_image->GetBufferPointer());
  const auto& g = image.geometry;
  const double spacing[2] = {g.spacing[0], g.spacing[1]};
  const double origin[2] = {g.origin[0], g.origin[1]};
  itk_image->SetSpacing(spacing);
  itk_image->SetOrigin(origin);
  typename ImageType::DirectionType direction;
  direction(0, 0) = g.direction[0];
  direction(0, 1) = g.direction[1];
  direction(1, 0) = g.direction[2];
  direction(1, 1) = g.direction[3];
  itk_image->SetDirection(direction);
  auto writer = itk::ImageFileWriter<ImageType>::New();
  writer->SetFileName(tmp.string());
  writer->SetInput(itk_image);
  writer->SetUseCompression(true);
  try {
    writer->Update();
  } catch (const itk::ExceptionObject& e) {
    throw Error(target.string(), "cannot write (" + first_line(e) + ")");
  }
}

// The names read_image_header gives, for ITK's component types.
std::string pixel_type_of(itk::IOComponentEnum component) {
  using Component = itk::IOComponentEnum;
  switch (component) {
    case Component::UCHAR: return "uint8";
    case Component::CHAR: return "int8";
    case Component::USHORT: return "uint16";
    case Component::SHORT: return "int16";
    case Component::UINT: return "uint32";
    case Component::INT: return "int32";
    case Component::ULONG: case Component::ULONGLONG: return "uint64";
    case Component::LONG: case Component::LONGLONG: return "int64";
    case Component::FLOAT: return "float32";
    case Component::DOUBLE: return "float64";
    default: return itk::ImageIOBase::GetComponentTypeAsString(component);
  }
}

itk::ImageIOBase::Pointer image_io_for(const fs::path& path) {
  register_itk_formats();
  auto image_io = itk::ImageIOFactory::CreateImageIO(path.string().c_str(), itk::ImageIOFactory::FileModeEnum::ReadMode);
  if (!image_io)
    throw Error(path.string(), "is not a readable " + full_extension(path) +
                                   " file (no reader recognises it: corrupt, truncated or mislabelled)");
  return image_io;
}

}  // namespace

Image read_with_itk(const fs::path& path, bool to_gray) {
  // read_image_header has checked the sizes, the dimensions and that the data is all there.
  const UnambiguousNiftiPath file(path);
  auto image_io = image_io_for(path);
  image_io->SetFileName(file.path().string());
  try {
    image_io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw Error(path.string(), "cannot be read (" + first_line(e) + "); the file is corrupt or truncated");
  }
  if (image_io->GetNumberOfComponents() > 1 && !to_gray)
    throw Error(path.string(), "has " + std::to_string(image_io->GetNumberOfComponents()) +
                                   " components per pixel (colour or vector); convert it to grey with --gray");
  // A multi-component file read into a scalar image is turned into its luminance by ITK.
  using Component = itk::IOComponentEnum;
  Image image;
  switch (image_io->GetComponentType()) {
    case Component::UCHAR: image = read_typed<uint8_t>(path, file.path(), image_io, at::kByte); break;
    case Component::SHORT: image = read_typed<int16_t>(path, file.path(), image_io, at::kShort); break;
    // widened: no uint16 in LibTorch 1.13
    case Component::USHORT: image = read_typed<uint16_t>(path, file.path(), image_io, at::kInt); break;
    default: image = read_typed<float>(path, file.path(), image_io, at::kFloat); break;
  }
  image.pixel_type = pixel_type_of(image_io->GetComponentType());
  return image;
}

ImageHeader dicom_header(const fs::path& path, const ReadLimits& limits) {
  check_dicom_parses(path);
  auto dicom = itk::GDCMImageIO::New();
  if (!dicom->CanReadFile(path.c_str()))
    throw Error(path.string(), "is not a readable DICOM file (no DICOM header found: corrupt, truncated or mislabelled)");
  dicom->SetFileName(path.string());
  try {
    dicom->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    throw Error(path.string(), "cannot be read (" + first_line(e) + "); the file is corrupt or truncated");
  }
  std::vector<int64_t> dimensions;
  for (unsigned d = 0; d < dicom->GetNumberOfDimensions(); ++d) dimensions.push_back(static_cast<int64_t>(dicom->GetDimensions(d)));
  const auto channels = static_cast<int64_t>(dicom->GetNumberOfComponents());
  check_image_shape(path, dimensions, channels, limits);
  ImageHeader header;
  header.format = "DICOM";
  header.width = dimensions.at(0);
  header.height = dimensions.at(1);
  header.channels = static_cast<int>(channels);
  header.pixel_type = pixel_type_of(dicom->GetComponentType());
  header.has_spacing = true;
  // Uncompressed pixel data is rows x columns x frames x samples x (bits allocated / 8) bytes.
  const FileBytes file(path);
  const std::string syntax = dicom_transfer_syntax(file);
  std::string bits_allocated;
  dicom->GetValueFromTag("0028|0100", bits_allocated);
  const int bits = std::atoi(bits_allocated.c_str());
  const bool uncompressed = syntax.empty() || syntax == "1.2.840.10008.1.2" || syntax == "1.2.840.10008.1.2.1" ||
                            syntax == "1.2.840.10008.1.2.2";
  if (uncompressed && bits >= 8 && bits % 8 == 0) {
    uint64_t bytes = static_cast<uint64_t>(channels) * static_cast<uint64_t>(bits / 8);
    for (const int64_t size : dimensions) bytes = saturating_product(bytes, static_cast<uint64_t>(size));
    require_raw_bytes(path, file.size(), bytes);
  }
  return header;
}

void write_with_itk(const fs::path& path, const Image& image) {
  register_itk_formats();
  if (image.pixels.dim() != 2)
    throw Error(path.string(), "only single-channel images can be written as " + full_extension(path));
  // ITK's NIfTI writer reports a full disk only as "** ERROR" lines on stderr and carries on:
  // its lines are muted, and what it left on disk is checked against its header instead.
  const QuietStderr quiet;
  const auto write = [&](const fs::path& tmp) {
    switch (image.pixels.scalar_type()) {
      case at::kByte: return write_typed<uint8_t>(path, tmp, image);
      case at::kShort: return write_typed<int16_t>(path, tmp, image);
      case at::kInt: {
        // uint16 sources were widened on reading; narrow them back when the values allow.
        const bool fits_uint16 = image.pixels.min().item<int64_t>() >= 0 && image.pixels.max().item<int64_t>() <= 65535;
        if (image.pixel_type == "uint16" && fits_uint16) return write_typed<uint16_t>(path, tmp, image);
        return write_typed<int32_t>(path, tmp, image);
      }
      case at::kDouble: return write_typed<double>(path, tmp, image);
      default: return write_typed<float>(path, tmp, image);
    }
  };
  // What ITK left on disk must be whole by its own header (sizes, and the gzip stream's end).
  const ReadLimits no_cap{std::numeric_limits<int64_t>::max()};
  write_atomically(path, write, [&](const fs::path& tmp) { read_image_header(tmp, no_cap); });
}

at::Tensor read_png_palette_indices(const fs::path& path) {
  register_itk_formats();
  auto png = itk::PNGImageIO::New();
  png->SetExpandRGBPalette(false);
  png->SetFileName(path.string());
  try {
    png->ReadImageInformation();
    if (!png->GetIsReadAsScalarPlusPalette()) return {};
    using ImageType = itk::Image<uint8_t, 2>;
    auto reader = itk::ImageFileReader<ImageType>::New();
    reader->SetFileName(path.string());
    reader->SetImageIO(png);
    reader->Update();
    auto out = reader->GetOutput();
    const auto size = out->GetLargestPossibleRegion().GetSize();
    return torch::from_blob(out->GetBufferPointer(), {static_cast<int64_t>(size[1]), static_cast<int64_t>(size[0])}, at::kByte)
        .clone();
  } catch (const itk::ExceptionObject&) {
    return {};
  }
}

}  // namespace seg::io::detail
