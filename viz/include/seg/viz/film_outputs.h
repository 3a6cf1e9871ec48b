#pragma once
// What a segmentation run writes for one film: its label map (PNG, NIfTI or a DICOM SEG that
// references the film), and when asked one mask per structure, the class probabilities and an
// overlay. Planned for every film before the first is written, so that the output contract is
// checked on all of them (seg/output.h).
#include <seg/dataset.h>
#include <seg/io/dicom_seg.h>
#include <seg/output.h>
#include <seg/segmenter.h>

#include <filesystem>
#include <string>
#include <vector>

namespace seg::viz {

struct FilmOutputRequest {
  std::string format = "png";  // of the label map and masks: png, nii, nii.gz or dcm
  bool overlay = false, probabilities = false, masks = false;
  io::SegmentationAlgorithm algorithm{};  // recorded in DICOM SEG label maps
};

// The files of one film, the label map last: once it exists, the film is done.
struct FilmOutputs {
  std::vector<std::filesystem::path> masks, probabilities;
  std::filesystem::path overlay, label_map;
  std::filesystem::path film;  // the input file, which a DICOM SEG references
  std::vector<std::filesystem::path> all() const;
};

// OUT/<case>.<format>, OUT/masks/<case>_<class>.<format> (NIfTI beside a DICOM SEG, which keeps
// the geometry), OUT/probabilities/<case>_<class>.nii.gz, OUT/overlays/<case>.png. Throws
// seg::Error when a name is not valid in the folder (OutputFolder::file).
FilmOutputs plan_film_outputs(const OutputFolder& folder, const std::string& case_id, const std::filesystem::path& film,
                              const ClassTable& classes, const FilmOutputRequest& request);

// Writes film `index` of `result` (segmented from `image`, whose geometry the outputs keep),
// each file whole or not at all.
void write_film_outputs(const Segmenter& segmenter, const Segmentation& result, int64_t index, const Image& image,
                        const std::string& case_id, const FilmOutputs& planned, const FilmOutputRequest& request);

// The subfolders of OUT that the request writes into.
std::vector<std::string> film_output_subfolders(const FilmOutputRequest& request);

}  // namespace seg::viz
