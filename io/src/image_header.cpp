// read_image_header: by extension, the plain parsers (image_header_parse.h) or, for DICOM,
// GDCM (itk_io.cpp); DICOM SEG through dcmseg (dicom_seg_read.cpp).
#include <seg/io/dicom_seg.h>
#include <seg/io/image_header.h>

#include "image_header_parse.h"
#include "io_internal.h"

namespace seg::io {

ImageHeader read_image_header(const std::filesystem::path& path, const ReadLimits& limits) {
  detail::require_readable_file(path);
  const std::string extension = detail::full_extension(path);
  if (detail::kind_of_extension(extension) == detail::FileKind::unknown) detail::unsupported_extension(path);
  if (const auto format = detail::header_format_of_extension(extension))
    return detail::parse_image_header(path, *format, limits);
  // GDCM takes a segmentation's frames for slices (and asserts on those without an orientation).
  if (is_dicom_segmentation(path)) return dicom_segmentation_header(path, limits);
  return detail::dicom_header(path, limits);
}

}  // namespace seg::io
