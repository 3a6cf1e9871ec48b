#pragma once
// DICOM Segmentation objects (Segmentation Storage, BINARY): a label map written beside the
// DICOM film it was made from, so that the result can go back to a PACS, and such an object
// read again as a label map. The codes and conventions are in docs/formats.md, "DICOM SEG".
#include <seg/dataset.h>
#include <seg/image.h>
#include <seg/io/image_header.h>

#include <filesystem>
#include <string>

namespace seg::io {

// What made the segmentation, recorded with every segment.
struct SegmentationAlgorithm {
  std::string name = "segsuite";
  std::string version;  // the suite's version
  std::string model;    // the model's file name (names joined with "+", for an ensemble)
};

// Whether `path` is a DICOM file whose SOP Class is Segmentation Storage. Reads the first
// elements only; false for anything else, unreadable files included.
bool is_dicom_segmentation(const std::filesystem::path& path);

// Throws seg::Error unless `film` can be the source of a DICOM SEG: a readable DICOM image
// (not itself a segmentation) with the Study, Series and SOP Instance UIDs a SEG references.
void check_segmentation_source(const std::filesystem::path& film);

// Writes `labels` (H x W uint8, the film's size, values from `classes`) as a DICOM SEG that
// references `film`: one segment per class of `classes` except background (value 0), numbered
// 1..N in the table's order, each a binary frame; the Patient and General Study modules and the
// Frame of Reference copied from the film, a new series. Atomic: the file appears whole or not
// at all. Throws seg::Error for a film that check_segmentation_source refuses, a size that does
// not match the film's, a label value outside `classes`, or a failed write.
void write_dicom_segmentation(const std::filesystem::path& path, const Image& labels,
                              const std::filesystem::path& film, const ClassTable& classes,
                              const SegmentationAlgorithm& algorithm);

// What a DICOM SEG file declares as a label map (format "DICOM SEG", uint8, one channel),
// read_image_header's contract: a file that is not whole, has no size, or has more pixels than
// limits.max_pixels is refused. read_image_header calls it for DICOM SEG files.
ImageHeader dicom_segmentation_header(const std::filesystem::path& path, const ReadLimits& limits = {});

// Reads a BINARY DICOM SEG of one image (one frame per segment at most) as a label map: the
// label value of a segment is the one its Segment Description records as "segsuite label V"
// (what write_dicom_segmentation writes), else its Segment Number; spacing, origin and
// direction come from its functional groups. Throws seg::Error for a file that is not such an
// object (FRACTIONAL, a volume), overlapping segments, two segments with one label value, label
// values above 255, or what dicom_segmentation_header refuses. read_image and read_label_map
// call it for DICOM SEG files.
Image read_dicom_segmentation(const std::filesystem::path& path);

}  // namespace seg::io
