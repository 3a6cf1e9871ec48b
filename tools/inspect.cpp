// seg-inspect: what a file or data set holds (sizes, types, intensities, labels, splits),
// with warnings for anything odd, as text or JSON, and an overlay picture of one case.
// The reports are made by io/inspection.h and seg/model_description.h.
#include <seg/error.h>
#include <seg/io/image_io.h>
#include <seg/io/inspection.h>
#include <seg/model_description.h>
#include <seg/model_file.h>
#include <seg/model_search.h>
#include <seg/output.h>
#include <seg/report_text.h>
#include <seg/viz/overlay.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;

namespace {

struct OverlayRequest {
  std::string path;       // --overlay
  std::string case_id;    // --case
  std::string label_map;  // --label-map
  bool any() const { return !path.empty() || !case_id.empty() || !label_map.empty(); }
};

// --overlay of an image file: over its label map, or a label map alone over black.
void draw_image_overlay(const fs::path& path, const Image& image, bool as_labels, const OverlayRequest& overlay) {
  at::Tensor labels;
  Image background = image;
  if (!overlay.label_map.empty()) {
    labels = io::read_label_map(overlay.label_map).pixels;
  } else if (as_labels) {
    labels = image.pixels;
    background.pixels = at::zeros_like(image.pixels);
  } else {
    throw UsageError("--overlay on an image needs --label-map LABELS (or --labels for a label map alone)");
  }
  if (labels.sizes() != background.pixels.sizes())
    throw Error(overlay.label_map, "is " + size_text_with_order(labels.size(0), labels.size(1)) + " but the image is " +
                                       size_text(image.height(), image.width()) + "; resample one with seg-convert --size");
  const auto classes = ClassTable::numbered(labels.max().item<int>() + 1);
  viz::write_png(overlay.path, viz::render_overlay(background, labels, classes, 0.45, path.filename().string()));
}

}  // namespace

int inspect(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("inspect", err, [&]() -> int {
    CLI::App app{
        "Shows what an image, a label map or a data set holds: size, pixel type, spacing,\n"
        "intensity statistics, label histogram; for a data set (folder with dataset.json or a\n"
        ".pth tensor pack) also cases, splits and classes, with warnings for anything odd; for a\n"
        "model file or run folder its network, classes, normalisation and training record.\n"
        "  seg-inspect DATA [--json] [--overlay OUT.png [--case ID]]  a data set folder or tensor pack\n"
        "  seg-inspect IMAGE [--labels] [--gray] [--overlay OUT.png --label-map LABELS]  an image or label map\n"
        "  seg-inspect MODEL|NAME  a model file, run folder or installed model's name\n"
        "  seg-inspect --models  the models --model NAME finds (SEG_MODEL_PATH, then installed)",
        "seg-inspect"};
    add_max_pixels_option(app);
    std::string path_text;
    bool as_labels = false, gray = false, as_json = false, strict = false, list_found_models = false;
    OverlayRequest overlay;
    app.add_option("path", path_text,
                   "image, label map, data set folder, dataset.json, tensor pack, model file, training run folder or "
                   "model name");
    app.add_flag("--models", list_found_models,
                 "list the models found by name, one a line: name, network, classes, file size, recorded test "
                 "figure, file");
    app.add_flag("--labels", as_labels, "treat the file as a label map");
    app.add_flag("--gray", gray, "accept a colour image, converted to grey");
    app.add_flag("--json", as_json, "machine-readable output");
    app.add_option("--overlay", overlay.path, "draw the image with its labels into this PNG");
    app.add_option("--case", overlay.case_id, "--overlay: the case of a data set (default: the first)");
    app.add_option("--label-map", overlay.label_map, "--overlay: the label map drawn over an image file");
    app.add_flag("--strict", strict, "exit with 1 when there are warnings");
    bool overwrite = false;
    app.add_flag("--overwrite", overwrite, "--overlay: replace an existing file");
    if (!parse(app, args, out)) return kOk;
    if (list_found_models != path_text.empty()) throw UsageError("give a path to inspect, or --models");
    if (list_found_models) {
      const auto folders = model_search_folders();
      const auto found = seg::list_found_models(folders);
      out << (as_json ? model_listing_json(found) : model_listing_text(found, folders));
      return kOk;
    }
    const fs::path path = find_model(path_text);
    if (!fs::exists(path)) throw Error(path.string(), "no such file or folder; check the path");
    if (!overlay.path.empty()) {
      Inputs inputs;
      add_data_set_input(inputs, path);
      inputs.add(overlay.label_map);
      check_output_file(overlay.path, inputs, overwrite ? Existing::overwrite : Existing::refuse,
                        "pass --overwrite to replace it");
    }
    if (is_model_path(path)) {
      if (overlay.any())
        throw UsageError("--overlay, --case and --label-map apply to images and data sets, not to models");
      const fs::path file = fs::is_directory(path) ? path / "model.pth" : path;
      const Model model = load_model(file);
      out << (as_json ? model_description_json(file, model) : model_description_text(file, model));
      return kOk;
    }

    const bool is_dataset = (fs::is_directory(path) && fs::exists(path / "dataset.json")) ||
                            path.extension() == ".json" || is_tensor_pack(path);
    if (fs::is_directory(path) && !is_dataset && fs::exists(path / "checkpoint.pt"))
      throw Error(path.string(), "is a training run with no model.pth yet (its first validation writes one); "
                                 "look again later or give a data set, model or image file");
    if (fs::is_directory(path) && !is_dataset)
      throw Error(path.string(), "is a folder without dataset.json; give a data set folder or an image file");
    if (!is_dataset && !overlay.case_id.empty()) throw UsageError("--case applies to data sets only");
    if (is_dataset && !overlay.label_map.empty()) throw UsageError("--label-map applies to image files only");
    if (overlay.path.empty() && overlay.any())
      throw UsageError("--case and --label-map choose what --overlay draws; add --overlay OUT.png");

    if (is_dataset) {
      const io::DatasetReport report = io::scan_dataset(path);
      out << (as_json ? io::dataset_report_json(report) : io::dataset_report_text(report));
      if (!overlay.path.empty()) {
        const io::DatasetCase drawn = io::read_dataset_case(path, overlay.case_id);
        viz::write_png(overlay.path, viz::render_overlay(drawn.image, drawn.labels, drawn.classes, 0.45,
                                                         report.name + " " + drawn.id));
        if (!as_json) out << "overlay of case " << drawn.id << ": " << overlay.path << "\n";
      }
      return strict && !report.warnings.empty() ? kBadInput : kOk;
    }
    io::ReadOptions read_options;
    read_options.to_gray = gray;
    const Image image = as_labels ? io::read_label_map(path) : io::read_image(path, read_options);
    const io::ImageReport report = io::describe_image(path, image, as_labels);
    out << (as_json ? io::image_report_json(report) : io::image_report_text(report));
    if (!overlay.path.empty()) {
      draw_image_overlay(path, image, as_labels, overlay);
      if (!as_json) out << "overlay: " << overlay.path << "\n";
    }
    return kOk;
  });
}

}  // namespace seg::tools
