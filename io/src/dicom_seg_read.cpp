// DICOM SEG in through DCMTK's dcmseg: a BINARY segmentation of one image as a label map.
#include <seg/error.h>
#include <seg/io/dicom_seg.h>
#include <seg/io/image_header.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/dcmseg/segutils.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "dicom_seg_dcmtk.h"
#include "image_header_parse.h"
#include "io_internal.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace {
using detail::prepare_dcmtk;
using detail::text_of;

// A DICOM SEG file opened with its size checked: elements longer than DCMTK's read limit (the
// pixel data) stay on disk until used, so nothing is allocated for a file that cannot be right.
struct SegmentationFile {
  Uint16 rows = 0, columns = 0;
};

SegmentationFile open_segmentation(const fs::path& path, DcmFileFormat& file, const ReadLimits& limits) {
  detail::require_readable_file(path);
  prepare_dcmtk(path);
  if (file.loadFile(path.c_str()).bad())
    throw Error(path.string(), "cannot be read as DICOM; the file is corrupt or truncated");
  DcmDataset& data = *file.getDataset();
  if (text_of(data, DCM_SOPClassUID) != UID_SegmentationStorage)
    throw Error(path.string(), "is not a DICOM SEG (its SOP Class is not Segmentation Storage)");
  SegmentationFile opened;
  data.findAndGetUint16(DCM_Rows, opened.rows);
  data.findAndGetUint16(DCM_Columns, opened.columns);
  detail::check_image_shape(path, {opened.columns, opened.rows}, 1, limits);
  // Uncompressed BINARY frames are packed 8 pixels a byte, frame after frame; FRACTIONAL ones
  // a byte a pixel. (Compressed ones are checked when dcmseg decompresses them.)
  if (DcmXfer(data.getOriginalXfer()).isEncapsulated()) return opened;
  Sint32 frames = 1;
  data.findAndGetSint32(DCM_NumberOfFrames, frames);
  Uint16 bits = 1;
  data.findAndGetUint16(DCM_BitsAllocated, bits);
  const uint64_t pixels = static_cast<uint64_t>(opened.rows) * opened.columns * static_cast<uint64_t>(std::max(frames, 1));
  DcmElement* pixel_data = nullptr;
  const uint64_t present = data.findAndGetElement(DCM_PixelData, pixel_data).good() ? pixel_data->getLength() : 0;
  detail::require_raw_bytes(path, present, bits == 1 ? (pixels + 7) / 8 : pixels);
  return opened;
}

// The label value of a segment: the one its description records (kLabelValuePrefix), else
// its number.
int label_value_of(DcmSegment& segment, size_t number) {
  OFString description;
  if (segment.getSegmentDescription(description).bad()) return static_cast<int>(number);
  const std::string text = description.c_str(), prefix = detail::kLabelValuePrefix;
  const bool recorded = text.rfind(prefix, 0) == 0 && text.size() > prefix.size() && text.size() <= prefix.size() + 3 &&
                        text.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
  return recorded ? std::stoi(text.substr(prefix.size())) : static_cast<int>(number);
}

// Each segment's label value, by its number; distinct, and within 1..255.
std::map<Uint16, int> label_values(DcmSegmentation& segmentation, const fs::path& path) {
  std::map<Uint16, int> value_of_segment;
  std::map<int, size_t> segment_of_value;
  for (size_t number = 1; number <= segmentation.getNumberOfSegments(); ++number) {
    DcmSegment* segment = segmentation.getSegment(number);
    if (!segment) throw Error(path.string(), "has no segment number " + std::to_string(number) + "; the file is corrupt");
    const int value = label_value_of(*segment, number);
    if (value < 1 || value > 255)
      throw Error(path.string(), "segment " + std::to_string(number) + " would be label value " + std::to_string(value) +
                                     ", outside 1..255; a label map holds small non-negative integers");
    const auto [other, fresh] = segment_of_value.emplace(value, number);
    if (!fresh)
      throw Error(path.string(), "segments " + std::to_string(other->second) + " and " + std::to_string(number) +
                                     " both claim label value " + std::to_string(value) + "; the file is inconsistent");
    value_of_segment[static_cast<Uint16>(number)] = value;
  }
  return value_of_segment;
}

// Paints each frame's segment into `labels` (rows x columns, zeros), refusing a segment seen
// twice (a volume) and segments that overlap.
void paint_frames(DcmSegmentation& segmentation, const std::map<Uint16, int>& value_of_segment, Uint16 rows,
                  Uint16 columns, at::Tensor& labels, const fs::path& path) {
  uint8_t* out = labels.data_ptr<uint8_t>();
  const size_t pixels = static_cast<size_t>(rows) * columns;
  std::vector<bool> seen(segmentation.getNumberOfSegments() + 1, false);
  for (size_t frame = 0; frame < segmentation.getNumberOfFrames(); ++frame) {
    const std::string which = "frame " + std::to_string(frame + 1);
    auto* group = dynamic_cast<FGSegmentation*>(
        segmentation.getFunctionalGroups().get(static_cast<Uint32>(frame), DcmFGTypes::EFG_SEGMENTATION));
    Uint16 number = 0;
    if (!group || group->getReferencedSegmentNumber(number).bad() || !value_of_segment.count(number))
      throw Error(path.string(), which + " names no segment of the file; the file is corrupt");
    if (seen[number])
      throw Error(path.string(), "holds more than one frame of segment " + std::to_string(number) +
                                     " (a volume); only a DICOM SEG of one image is read as a label map");
    seen[number] = true;
    const DcmIODTypes::Frame* packed = segmentation.getFrame(frame);
    if (!packed) throw Error(path.string(), which + " is missing; the file is corrupt or truncated");
    const std::unique_ptr<DcmIODTypes::Frame> unpacked(DcmSegUtils::unpackBinaryFrame(packed, rows, columns));
    if (!unpacked || unpacked->length < pixels)
      throw Error(path.string(), which + " is cut short; the file is corrupt or truncated");
    const auto value = static_cast<uint8_t>(value_of_segment.at(number));
    int64_t overlaps = 0;
    for (size_t i = 0; i < pixels; ++i) {
      if (!unpacked->pixData[i]) continue;
      if (out[i]) ++overlaps;
      out[i] = value;
    }
    if (overlaps)
      throw Error(path.string(), "segment " + std::to_string(number) + " overlaps others at " + std::to_string(overlaps) +
                                     " pixels; a label map holds one label a pixel");
  }
}

// Spacing, origin and direction from the first frame's groups, as ITK reads a DICOM image.
Geometry geometry_of(FGInterface& groups) {
  Geometry geometry;
  if (auto* measures = dynamic_cast<FGPixelMeasures*>(groups.get(0, DcmFGTypes::EFG_PIXELMEASURES))) {
    Float64 row_spacing = 0, column_spacing = 0;
    if (measures->getPixelSpacing(row_spacing, 0).good() && measures->getPixelSpacing(column_spacing, 1).good() &&
        row_spacing > 0 && column_spacing > 0) {
      geometry.spacing = {column_spacing, row_spacing};
      geometry.has_spacing = true;
    }
  }
  if (auto* position = dynamic_cast<FGPlanePosPatient*>(groups.get(0, DcmFGTypes::EFG_PLANEPOSPATIENT))) {
    Float64 x = 0, y = 0, z = 0;
    if (position->getImagePositionPatient(x, y, z).good()) geometry.origin = {x, y};
  }
  if (auto* orientation = dynamic_cast<FGPlaneOrientationPatient*>(groups.get(0, DcmFGTypes::EFG_PLANEORIENTPATIENT))) {
    Float64 row_x = 0, row_y = 0, row_z = 0, column_x = 0, column_y = 0, column_z = 0;
    if (orientation->getImageOrientationPatient(row_x, row_y, row_z, column_x, column_y, column_z).good())
      geometry.direction = {row_x, column_x, row_y, column_y};
  }
  return geometry;
}

}  // namespace

bool is_dicom_segmentation(const fs::path& path) {
  const std::string extension = detail::full_extension(path);
  if (extension != ".dcm" && !extension.empty()) return false;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  prepare_dcmtk(path);
  DcmFileFormat file;
  if (file.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect,
                            DCM_SOPInstanceUID)
          .bad())
    return false;
  return text_of(*file.getDataset(), DCM_SOPClassUID) == UID_SegmentationStorage;
}

ImageHeader dicom_segmentation_header(const fs::path& path, const ReadLimits& limits) {
  DcmFileFormat file;
  const SegmentationFile segmentation_file = open_segmentation(path, file, limits);
  ImageHeader header;
  header.format = "DICOM SEG";
  header.height = segmentation_file.rows;
  header.width = segmentation_file.columns;
  header.pixel_type = "uint8";
  OFString spacing;
  header.has_spacing = file.getDataset()->findAndGetOFString(DCM_PixelSpacing, spacing, 0, OFTrue).good();
  return header;
}

Image read_dicom_segmentation(const fs::path& path) {
  DcmFileFormat file;
  const SegmentationFile segmentation_file = open_segmentation(path, file, ReadLimits{});
  const Uint16 rows = segmentation_file.rows, columns = segmentation_file.columns;
  DcmSegmentation* loaded = nullptr;
  const OFCondition status = DcmSegmentation::loadDataset(*file.getDataset(), loaded);
  const std::unique_ptr<DcmSegmentation> segmentation(loaded);
  detail::check_dcmtk(status, path, "is not a valid DICOM SEG");
  if (segmentation->getSegmentationType() != DcmSegTypes::ST_BINARY)
    throw Error(path.string(), "is a FRACTIONAL DICOM SEG (probabilities); a label map is read from a BINARY one only");
  Image image;
  image.pixels = at::zeros({rows, columns}, at::kByte);
  image.pixel_type = "uint8";
  paint_frames(*segmentation, label_values(*segmentation, path), rows, columns, image.pixels, path);
  image.geometry = geometry_of(segmentation->getFunctionalGroups());
  return image;
}

}  // namespace seg::io
