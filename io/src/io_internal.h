#pragma once
// Helpers shared by the io sources (never installed: it includes OpenCV).
#include <seg/image.h>
#include <seg/io/image_header.h>

#include <opencv2/core.hpp>

#include <filesystem>
#include <functional>
#include <string>

#include "quiet_stderr.h"

namespace seg::io::detail {

// ".png", ".nii.gz", ".nhdr", ... in lower case; "" when the name has none.
std::string full_extension(const std::filesystem::path& path);

enum class FileKind { opencv, itk, unknown };
// Which library reads (or writes) a file with this extension.
FileKind kind_of_extension(const std::string& extension);

// A single-channel H x W tensor as a cv::Mat (copy) and back. Tensor types: kByte, kShort,
// kInt, kFloat, kDouble; Mat depths: 8U, 16U, 16S, 32S, 32F, 64F.
cv::Mat mat_of(const at::Tensor& pixels);
at::Tensor tensor_of(const cv::Mat& mat);

// ITK reading/writing (itk_io.cpp).
Image read_with_itk(const std::filesystem::path& path, bool to_gray);
void write_with_itk(const std::filesystem::path& path, const Image& image);
// A palette PNG's indices (not its colours), or an undefined tensor if it has no palette.
at::Tensor read_png_palette_indices(const std::filesystem::path& path);
// A DICOM file's header through GDCM (read_image_header's contract).
ImageHeader dicom_header(const std::filesystem::path& path, const ReadLimits& limits);
// Throws seg::Error when DCMTK cannot parse the file as DICOM with pixel data. GDCM asserts
// (aborting the process) on some corrupt files that DCMTK reports; dicom_header asks this first.
void check_dicom_parses(const std::filesystem::path& path);

// Throws seg::Error for a path that does not exist or is a folder.
void require_readable_file(const std::filesystem::path& path);
// Throws seg::Error naming the extensions that are read.
[[noreturn]] void unsupported_extension(const std::filesystem::path& path);

}  // namespace seg::io::detail
