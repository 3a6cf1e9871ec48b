// seg-convert: images and label maps between formats, whole data sets between a folder and a
// tensor pack, the course notebook's .pth files and the JSRT distribution into a data set, and
// models and their weights. The conversions are io/conversion.h's; this file reads the command
// line, chooses one and says what it wrote.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/io/conversion.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/model_search.h>
#include <seg/models.h>
#include <seg/output.h>

#include <cmath>
#include <filesystem>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;

namespace {

bool is_dataset_input(const fs::path& path) {
  if (fs::is_directory(path)) return fs::exists(path / "dataset.json");
  return is_tensor_pack(path) || path.extension() == ".json";
}

std::string extension_of_format(const std::string& format) {
  if (format == "png" || format == "nii" || format == "nii.gz" || format == "nrrd" || format == "mha" ||
      format == "tif")
    return "." + format;
  throw UsageError("--format " + format + ": expected png, nii, nii.gz, nrrd, mha or tif");
}

// What the command line says about PyTorch weights.
struct WeightOptions {
  std::string network;    // --network: import a state_dict of this network
  std::string data_path;  // --data
  std::string normalize;  // --normalize
  double mean = 0, std_dev = 1;
  bool mean_given = false, std_given = false;
  bool state_dict = false;  // --state-dict: export
  bool any() const { return !network.empty() || state_dict; }
};

// --network (import) or --state-dict (export): checks the combination, then runs it.
// `other_options`: whether options that apply to images, data sets or models were given.
std::string convert_weights(const WeightOptions& w, bool half, bool other_options, const std::vector<std::string>& inputs,
                            const io::ConversionOutput& output) {
  const bool importing = !w.network.empty();
  if (importing && w.state_dict)
    throw UsageError("--network imports a state_dict and --state-dict exports one: give one of them");
  if (inputs.size() != 1)
    throw UsageError(std::string(importing ? "--network" : "--state-dict") + " takes one input, got " +
                     std::to_string(inputs.size()));
  if (other_options)
    throw UsageError("--network and --state-dict take none of --notebook, --jsrt, --labels, --gray, --size, "
                     "--to-notebook, --name, --framing-from, --overlap");
  if (w.state_dict) {
    if (half) throw UsageError("--state-dict writes float32; --half applies to model files");
    const fs::path model = find_model_or_keep(inputs[0]);
    if (!is_model_path(model))
      throw Error(inputs[0], "is not a segsuite model file or training run folder; --state-dict exports a model's weights");
    return io::export_weights(model, output);
  }
  if (w.data_path.empty()) throw UsageError("--network needs --data: the data set that gives the classes and image size");
  if (w.mean_given != w.std_given) throw UsageError("--mean and --std go together");
  if (w.mean_given && w.normalize == "image") throw UsageError("--normalize image takes no --mean and --std");
  if (w.std_given && !(w.std_dev > 0 && std::isfinite(w.std_dev) && std::isfinite(w.mean)))
    throw UsageError("--std must be positive and --mean finite");
  if (is_model_path(inputs[0]))
    throw Error(inputs[0], "is a segsuite model already, not a PyTorch state_dict; it needs no --network");
  io::WeightsImport how;
  how.data = w.data_path;
  how.how.architecture = w.network;
  if (w.normalize == "image") how.how.normalization = Normalization{"image", 0.0, 1.0};
  if (w.mean_given) how.how.normalization = Normalization{"dataset", w.mean, w.std_dev};
  how.precision = half ? WeightPrecision::float16 : WeightPrecision::float32;
  return io::import_weights(inputs[0], output, how);
}

}  // namespace

int convert(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("convert", err, [&]() -> int {
    CLI::App app{
        "Converts images, label maps and data sets between formats.\n"
        "  seg-convert IMAGE -o OUT.nii.gz  one file; the format follows the extension\n"
        "  seg-convert FILES.../FOLDER -o DIR  many files into DIR (--format png|nii.gz|...)\n"
        "  seg-convert DATASET -o OUT.pth|DIR  data set folder <-> tensor pack\n"
        "  seg-convert DATASET --to-notebook -o DIR  the notebook's JSRT_img0_lms.pth + jsrt_seg_masks.pth\n"
        "  seg-convert --notebook IMAGES.pth MASKS.pth -o DIR|OUT.pth  the notebook's two files into a data set\n"
        "  seg-convert --jsrt RAW_DIR MASKS_DIR -o DIR|OUT.pth [--size 256]  JSRT's films and SCR's masks into a data set\n"
        "  seg-convert MODEL.pth|RUN_DIR -o OUT.pth [--half] [--framing-from DATA] [--overlap UNDER:OVER]...  a model file\n"
        "  seg-convert WEIGHTS.pt --network NAME --data DATA -o MODEL.pth [--mean M --std S|--normalize image]  "
        "a state_dict trained in Python into a model\n"
        "  seg-convert MODEL.pth --state-dict -o WEIGHTS.pt  a model's weights for Python's load_state_dict\n"
        "Outputs are written whole or not at all.",
        "seg-convert"};
    add_max_pixels_option(app);
    std::vector<std::string> inputs;
    std::string output_path, size_text, format = "png";
    io::ImageConversion image_how;
    io::DatasetWrite dataset_how;
    bool notebook = false, jsrt = false, overwrite = false;
    int64_t train_count = 160, raw_size = 2048;
    app.add_option("inputs", inputs, "input files or folders")->required();
    app.add_option("-o,--out", output_path, "output file or folder")->required();
    app.add_flag("--labels", image_how.labels, "the inputs are label maps (nearest-neighbour resampling, uint8)");
    app.add_flag("--gray", image_how.to_gray, "turn colour images into grey (otherwise colour is an error)");
    app.add_option("--size", size_text, "resample to N x N or HxW (images: area/bilinear; labels: nearest)");
    app.add_option("--format", format, "file format when writing into a folder: png, nii.gz, nii, nrrd, mha, tif")
        ->capture_default_str();
    app.add_flag("--notebook", notebook, "inputs are the notebook's JSRT_img0_lms.pth and jsrt_seg_masks.pth");
    app.add_flag("--to-notebook", dataset_how.notebook_files, "write a data set as the notebook's two .pth files into the folder OUT");
    app.add_flag("--jsrt", jsrt, "inputs are the JSRT raw .IMG folder and the SCR masks folder");
    app.add_option("--train-count", train_count, "--notebook: the first N cases form the train split")->capture_default_str();
    app.add_option("--raw-size", raw_size, "--jsrt: edge of the raw images in pixels")->capture_default_str();
    app.add_option("--name", dataset_how.name, "name of the written data set");
    app.add_flag("--overwrite", overwrite, "replace an existing output");
    bool half = false;
    app.add_flag("--half", half, "a model: store its weights as float16 (half the file; masks change only by rounding)");
    std::string framing_from;
    app.add_option("--framing-from", framing_from,
                   "a model: record where the structures sit in this data set's train split (the data it was "
                   "trained on), for seg-segment's reframing; seg-train records it itself since 2026-12-05");
    std::vector<std::string> overlaps;
    app.add_option("--overlap", overlaps,
                   "a model: UNDER:OVER (class names or values; repeat it) says its training labels drew OVER over "
                   "part of UNDER (JSRT/SCR: right_lung:right_clavicle and left_lung:left_clavicle), so "
                   "seg-segment --whole can paint UNDER whole again");
    WeightOptions weights;
    app.add_option("--network", weights.network,
                   "the input is a PyTorch state_dict of this network: make it a model (with --data)")
        ->check(CLI::IsMember(network_names()));
    app.add_option("--data", weights.data_path,
                   "--network: the data set (folder or tensor pack) whose class table, image size and train split "
                   "(normalisation) the model takes");
    const auto* mean_option = app.add_option("--mean", weights.mean,
                                             "--network: the intensity mean the weights were trained with (with --std)");
    const auto* std_option = app.add_option("--std", weights.std_dev,
                                            "--network: the intensity standard deviation the weights were trained with");
    app.add_option("--normalize", weights.normalize,
                   "--network: dataset (default: (x - mean) / std, the train split's unless --mean/--std) or image "
                   "(each image on its own)")
        ->check(CLI::IsMember({"dataset", "image"}));
    app.add_flag("--state-dict", weights.state_dict,
                 "a model: write its weights as a plain state_dict for Python (float32; the notebook's names for "
                 "its networks)");
    if (!parse(app, args, out)) return kOk;
    const auto ends_with = [&](const char* suffix) {
      const std::string tail(suffix);
      return output_path.size() >= tail.size() && output_path.compare(output_path.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (ends_with(".mhd") || ends_with(".nhdr"))
      throw UsageError("-o " + output_path + ": this format keeps its pixels in a second file, which cannot be written "
                       "whole with its header; write .mha or .nrrd (one file)");
    if (image_how.labels && (ends_with(".jpg") || ends_with(".jpeg")))
      throw UsageError("-o " + output_path + ": JPEG is lossy and would change label values; write label maps as .png");
    io::ConversionOutput output{output_path, {}, overwrite ? Existing::overwrite : Existing::refuse, "pass --overwrite"};
    for (const auto& input : inputs) add_data_set_input(output.inputs, input);
    if (!size_text.empty()) image_how.size = parse_size(size_text);
    if (notebook && jsrt) throw UsageError("--notebook and --jsrt exclude each other");
    const bool image_or_data_options = image_how.labels || image_how.to_gray || image_how.size ||
                                       dataset_how.notebook_files || !dataset_how.name.empty();
    // A data set folder's file format is checked only where one is written.
    const auto write_dataset = [&](Dataset data) {
      if (!dataset_how.notebook_files && !is_tensor_pack(output.path)) dataset_how.extension = extension_of_format(format);
      out << io::write_dataset(std::move(data), output, dataset_how);
      return kOk;
    };

    weights.mean_given = mean_option->count() > 0;
    weights.std_given = std_option->count() > 0;
    if (!weights.any() && (!weights.data_path.empty() || weights.mean_given || weights.std_given ||
                           !weights.normalize.empty()))
      throw UsageError("--data, --mean, --std and --normalize go with --network (importing a PyTorch state_dict)");
    if (weights.any()) {
      const bool other = notebook || jsrt || image_or_data_options || !framing_from.empty() || !overlaps.empty();
      out << convert_weights(weights, half, other, inputs, output);
      return kOk;
    }

    if (notebook || jsrt) {
      if (inputs.size() != 2)
        throw UsageError(std::string(notebook ? "--notebook needs IMAGES.pth MASKS.pth" : "--jsrt needs RAW_DIR MASKS_DIR") +
                         ", got " + std::to_string(inputs.size()) + " inputs");
      if (notebook) {
        Dataset data = io::import_notebook_files(inputs[0], inputs[1], train_count);
        return write_dataset(image_how.size ? io::resample_dataset(std::move(data), image_how.size->first, image_how.size->second)
                                            : std::move(data));
      }
      if (image_how.size && image_how.size->first != image_how.size->second)
        throw UsageError("--jsrt: --size must be square (JSRT images are square)");
      return write_dataset(io::import_jsrt(inputs[0], inputs[1], image_how.size ? image_how.size->first : 256, raw_size));
    }

    if (const fs::path model = find_model_or_keep(inputs[0]); inputs.size() == 1 && is_model_path(model)) {
      if (image_or_data_options)
        throw UsageError("--labels, --gray, --size, --to-notebook and --name apply to images and data sets, not to a model "
                         "(a model converts with --half or without)");
      io::ModelRewrite how;
      how.precision = half ? WeightPrecision::float16 : WeightPrecision::float32;
      how.framing_data = framing_from;
      if (!overlaps.empty())
        how.overlaps = [&overlaps](const ClassTable& classes) {
          std::vector<Overlap> parsed;
          for (const auto& text : overlaps) parsed.push_back(parse_overlap(text, classes));
          check_overlaps(parsed, classes, "--overlap");
          return parsed;
        };
      out << io::rewrite_model(model, output, how);
      return kOk;
    }
    if (half || !framing_from.empty() || !overlaps.empty())
      throw UsageError("--half, --framing-from and --overlap apply to a model file or training run folder");

    if (inputs.size() == 1 && fs::exists(inputs[0]) && is_dataset_input(inputs[0])) {
      io::LoadOptions load;
      load.size = image_how.size;
      load.require_labels = false;
      const Dataset data = io::load_dataset(inputs[0], load);
      print_data_warnings(data, "convert", err);
      return write_dataset(data);
    }
    if (dataset_how.notebook_files)
      throw UsageError("--to-notebook needs a data set (folder with dataset.json or .pth) as input");

    const auto files = io::image_files({inputs.begin(), inputs.end()});
    if (inputs.size() == 1 && !fs::is_directory(inputs[0]) && io::is_image_path(output.path)) {
      out << io::convert_image_file(files[0], output, image_how);
      return kOk;
    }
    out << io::convert_image_files(files, extension_of_format(format), output, image_how);
    return kOk;
  });
}

}  // namespace seg::tools
