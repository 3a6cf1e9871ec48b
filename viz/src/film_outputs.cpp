#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/viz/film_outputs.h>
#include <seg/viz/overlay.h>
#include <torch/torch.h>

namespace seg::viz {
namespace fs = std::filesystem;

std::vector<fs::path> FilmOutputs::all() const {
  std::vector<fs::path> files = masks;
  files.insert(files.end(), probabilities.begin(), probabilities.end());
  if (!overlay.empty()) files.push_back(overlay);
  files.push_back(label_map);
  return files;
}

FilmOutputs plan_film_outputs(const OutputFolder& folder, const std::string& case_id, const fs::path& film,
                              const ClassTable& classes, const FilmOutputRequest& request) {
  FilmOutputs planned;
  planned.film = film;
  const std::string mask_format = request.format == "dcm" ? "nii.gz" : request.format;
  for (const auto& [name, value] : classes.entries) {
    if (request.masks && value != 0) planned.masks.push_back(folder.file("masks/" + case_id + "_" + name + "." + mask_format));
    if (request.probabilities) planned.probabilities.push_back(folder.file("probabilities/" + case_id + "_" + name + ".nii.gz"));
  }
  if (request.overlay) planned.overlay = folder.file("overlays/" + case_id + ".png");
  planned.label_map = folder.file(case_id + "." + request.format);
  return planned;
}

void write_film_outputs(const Segmenter& segmenter, const Segmentation& result, int64_t index, const Image& image,
                        const std::string& case_id, const FilmOutputs& planned, const FilmOutputRequest& request) {
  const ClassTable& classes = segmenter.classes();
  // A film's outputs are a unit: one that cannot be written leaves a new film undone rather
  // than half done (seg::FileSet).
  FileSet outputs;
  if (request.masks) {
    const int mask_on = request.format == "png" ? 255 : 1;  // visible in a PNG viewer; a label in NIfTI
    const auto masks = segmenter.structure_masks(result, index);
    for (size_t k = 0; k < masks.size(); ++k)
      outputs.write(planned.masks[k], [&] {
        io::write_label_map(planned.masks[k], {(masks[k].second.to(torch::kByte) * mask_on).contiguous(), image.geometry, "uint8"});
      });
  }
  if (request.probabilities)
    for (int64_t k = 0; k < result.probabilities.size(1); ++k) {
      const auto& file = planned.probabilities[static_cast<size_t>(k)];
      outputs.write(file, [&] { io::write_image(file, {result.probabilities[index][k].contiguous(), image.geometry, "float32"}); });
    }
  const Image label_map{result.labels[index].contiguous(), image.geometry, "uint8"};
  if (request.overlay)
    outputs.write(planned.overlay, [&] { write_png(planned.overlay, render_overlay(image, label_map.pixels, classes, 0.45, case_id)); });
  if (request.format == "dcm")
    io::write_dicom_segmentation(planned.label_map, label_map, planned.film, classes, request.algorithm);
  else
    io::write_label_map(planned.label_map, label_map);
  outputs.commit();
}

std::vector<std::string> film_output_subfolders(const FilmOutputRequest& request) {
  std::vector<std::string> subfolders;
  if (request.overlay) subfolders.push_back("overlays");
  if (request.probabilities) subfolders.push_back("probabilities");
  if (request.masks) subfolders.push_back("masks");
  return subfolders;
}

}  // namespace seg::viz
