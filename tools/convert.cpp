// seg-convert: images and label maps between formats, whole data sets between a folder and a
// tensor pack, the course notebook's .pth files and the JSRT distribution into a data set.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/model_search.h>
#include <seg/models.h>
#include <seg/output.h>
#include <seg/state_dict.h>

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;

namespace {

// A folder output (a data set, the notebook's files) is a unit: an existing folder that is not
// empty is replaced only with --overwrite, file by file, and never if it is an input.
fs::path checked_folder_output(const fs::path& target, const Inputs& inputs, bool overwrite) {
  const OutputFolder folder(target, inputs, overwrite ? Existing::overwrite : Existing::refuse, "");
  std::error_code ec;
  if (fs::exists(target) && !fs::is_empty(target, ec) && !overwrite)
    throw Error(target.string(), "exists and is not empty; choose a new folder or pass --overwrite");
  return target;
}

bool is_dataset_input(const fs::path& path) {
  if (fs::is_directory(path)) return fs::exists(path / "dataset.json");
  return is_tensor_pack(path) || path.extension() == ".json";
}

std::string shape_text(int64_t height, int64_t width) { return std::to_string(height) + "x" + std::to_string(width); }

std::string extension_of_format(const std::string& format) {
  if (format == "png" || format == "nii" || format == "nii.gz" || format == "nrrd" || format == "mha" ||
      format == "tif")
    return "." + format;
  throw UsageError("--format " + format + ": expected png, nii, nii.gz, nrrd, mha or tif");
}

struct Options {
  std::vector<std::string> inputs;
  Inputs read_paths;  // every file and folder read: never an output
  std::string output;
  bool labels = false;
  bool gray = false;
  std::optional<std::pair<int64_t, int64_t>> size;
  std::string format = "png";
  bool overwrite = false;
  bool to_notebook = false;
  std::string name;
};

Existing existing_policy(const Options& options) { return options.overwrite ? Existing::overwrite : Existing::refuse; }

// A data set goes to a tensor pack (OUT.pth), the notebook's two files (--to-notebook: a
// folder with JSRT_img0_lms.pth and jsrt_seg_masks.pth) or a data set folder.
void write_dataset(Dataset data, const Options& options, std::ostream& out) {
  if (!options.name.empty()) data.name = options.name;
  const fs::path target = options.output;
  const std::string summary = std::to_string(data.size()) + " cases of " +
                              shape_text(data.images.size(1), data.images.size(2)) + " (height x width), " +
                              std::to_string(data.classes.size()) + " classes";
  if (options.to_notebook) {
    StagedFolder folder(checked_folder_output(target, options.read_paths, options.overwrite));
    io::export_notebook_files(data, folder.path() / "JSRT_img0_lms.pth", folder.path() / "jsrt_seg_masks.pth");
    folder.commit();
    out << "wrote " << (target / "JSRT_img0_lms.pth").string() << " and " << (target / "jsrt_seg_masks.pth").string()
        << ": " << summary << "\n";
    return;
  }
  if (is_tensor_pack(target)) {
    check_output_file(target, options.read_paths, existing_policy(options), "choose another name or pass --overwrite");
    save_tensor_pack(data, target);
    out << "wrote tensor pack " << target.string() << ": " << summary << "\n";
    return;
  }
  const std::string extension = extension_of_format(options.format);
  StagedFolder folder(checked_folder_output(target, options.read_paths, options.overwrite));
  io::write_dataset_folder(data, folder.path(), extension);
  folder.commit();
  const std::string image_extension = io::image_extension_for(data, extension);
  out << "wrote data set folder " << target.string() << ": " << summary << ", " << stored_pixel_type(data.images)
      << " images as " << image_extension << (data.labels.defined() ? ", label maps as " + extension : "") << "\n";
  // NIfTI, NRRD and MHA store a spacing: say when it is made up rather than the sources'.
  const bool all_spaced = !data.geometry.empty() &&
                          std::all_of(data.geometry.begin(), data.geometry.end(), [](const Geometry& g) { return g.has_spacing; });
  if (image_extension != ".png" && image_extension != ".tif" && !all_spaced) out << "no spacing in the sources: 1 x 1 mm assumed\n";
}

// A model file (or a run's model.pth) rewritten with its weights in float16 or float32.
// With `framing_from` (a data set; its train split), the framing seg-segment reframes with is
// measured on that split's labels and recorded, for models trained before seg-train recorded it.
// `overlaps` (UNDER:OVER), when given, replace the structures the model records as drawn over.
void write_model(const fs::path& input, bool half, const std::string& framing_from,
                 const std::vector<std::string>& overlaps, const Options& options, std::ostream& out) {
  const fs::path target = options.output;
  if (target.extension() != ".pth") throw Error(target.string(), "a model is written as a .pth file; name it OUT.pth");
  check_output_file(target, options.read_paths, existing_policy(options), "choose another name or pass --overwrite");
  Model model = load_model(input);
  if (!framing_from.empty()) {
    const Dataset data = load_data(framing_from);
    if (data.classes.entries != model.info.classes.entries)
      throw Error(framing_from, "has another class table than the model " + input.string() +
                                    "; measure the framing on the data the model was trained on");
    model.info.framing = measure_framing(data.subset("train").labels);
  }
  if (!overlaps.empty()) {
    model.info.overlaps.clear();
    for (const auto& text : overlaps) model.info.overlaps.push_back(parse_overlap(text, model.info.classes));
    check_overlaps(model.info.overlaps, model.info.classes, "--overlap");
  }
  model.stored_as = half ? WeightPrecision::float16 : WeightPrecision::float32;
  save_model(model, target);
  out << "wrote model " << target.string() << " (" << model.info.network.architecture << ", weights in "
      << precision_name(model.stored_as) << " with their SHA-256, " << fs::file_size(target) << " bytes";
  if (model.info.framing)
    out << "; framing top " << model.info.framing->top << ", bottom " << model.info.framing->bottom << ", left "
        << model.info.framing->left << ", right " << model.info.framing->right;
  for (const auto& o : model.info.overlaps)
    out << "; " << model.info.classes.name_of(o.under) << " under " << model.info.classes.name_of(o.over);
  out << ")\n";
}

// A state_dict trained in Python (torch.save(model.state_dict(), f)) made into our model file:
// the network `how.architecture`, the classes and input size of the data set `data_path`.
void import_weights(const fs::path& weights, const std::string& data_path, const StateDictImport& how, bool half,
                    const Options& options, std::ostream& out) {
  const fs::path target = options.output;
  if (target.extension() != ".pth") throw Error(target.string(), "a model is written as a .pth file; name it OUT.pth");
  check_output_file(target, options.read_paths, existing_policy(options), "choose another name or pass --overwrite");
  if (is_model_path(weights))
    throw Error(weights.string(), "is a segsuite model already, not a PyTorch state_dict; it needs no --network");
  DataRequest request;
  request.require_labels = false;
  const Dataset data = load_data(data_path, request);
  Model model = import_state_dict(weights, data, how);
  model.stored_as = half ? WeightPrecision::float16 : WeightPrecision::float32;
  save_model(model, target);
  const auto& info = model.info;
  out << "wrote model " << target.string() << " (" << info.network.architecture << " from the PyTorch state_dict "
      << weights.string() << "; " << info.classes.size() << " classes and input size "
      << shape_text(info.input_size[0], info.input_size[1]) << " from " << data.source << "; normalization "
      << info.normalization.mode;
  if (info.normalization.mode == "dataset")
    out << " mean " << info.normalization.mean << " std " << info.normalization.std;
  out << "; weights in " << precision_name(model.stored_as) << ")\n";
}

// A model's weights as a plain state_dict for Python's load_state_dict.
void export_weights(const fs::path& input, const Options& options, std::ostream& out) {
  const fs::path target = options.output;
  if (target.extension() != ".pt" && target.extension() != ".pth")
    throw Error(target.string(), "a state_dict is written as a .pt or .pth file; name it WEIGHTS.pt");
  check_output_file(target, options.read_paths, existing_policy(options), "choose another name or pass --overwrite");
  const Model model = load_model(input);
  const StateDict state = python_state_dict(model);
  save_state_dict(state, target);
  const std::string& network = model.info.network.architecture;
  out << "wrote state_dict " << target.string() << " (" << network << ", " << state.size() << " float32 tensors named as "
      << (has_notebook_names(network) ? "the course notebook names them" : "segsuite names them")
      << "; in Python: model.load_state_dict(torch.load(path)))\n";
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
void convert_weights(const WeightOptions& w, bool half, bool other_options, Options& options, std::ostream& out) {
  const bool importing = !w.network.empty();
  if (importing && w.state_dict)
    throw UsageError("--network imports a state_dict and --state-dict exports one: give one of them");
  if (options.inputs.size() != 1)
    throw UsageError(std::string(importing ? "--network" : "--state-dict") + " takes one input, got " +
                     std::to_string(options.inputs.size()));
  if (other_options)
    throw UsageError("--network and --state-dict take none of --notebook, --jsrt, --labels, --gray, --size, "
                     "--to-notebook, --name, --framing-from, --overlap");
  if (w.state_dict) {
    if (half) throw UsageError("--state-dict writes float32; --half applies to model files");
    const fs::path model = find_model_or_keep(options.inputs[0]);
    if (!is_model_path(model))
      throw Error(options.inputs[0], "is not a segsuite model file or training run folder; --state-dict exports "
                                     "a model's weights");
    options.read_paths.add(fs::is_directory(model) ? model / "model.pth" : model);
    export_weights(model, options, out);
    return;
  }
  if (w.data_path.empty()) throw UsageError("--network needs --data: the data set that gives the classes and image size");
  if (w.mean_given != w.std_given) throw UsageError("--mean and --std go together");
  if (w.mean_given && w.normalize == "image") throw UsageError("--normalize image takes no --mean and --std");
  if (w.std_given && !(w.std_dev > 0 && std::isfinite(w.std_dev) && std::isfinite(w.mean)))
    throw UsageError("--std must be positive and --mean finite");
  StateDictImport how;
  how.architecture = w.network;
  if (w.normalize == "image") how.normalization = Normalization{"image", 0.0, 1.0};
  if (w.mean_given) how.normalization = Normalization{"dataset", w.mean, w.std_dev};
  options.read_paths.add(w.data_path);
  import_weights(options.inputs[0], w.data_path, how, half, options, out);
}

// One image or label map in, one out.
void convert_file(const fs::path& input, const fs::path& output, const Options& options) {
  if (options.labels) {
    Image labels = io::read_label_map(input);
    if (options.size) labels = io::resize_label_map(labels, options.size->first, options.size->second);
    io::write_label_map(output, labels);
  } else {
    io::ReadOptions read_options;
    read_options.to_gray = options.gray;
    Image image = io::read_image(input, read_options);
    if (options.size) image = io::resize_image(image, options.size->first, options.size->second);
    io::write_image(output, image);
  }
}

// Images from files and folders (their image files, not recursively), in a stable order.
std::vector<fs::path> image_files(const std::vector<std::string>& inputs) {
  std::vector<fs::path> files;
  for (const auto& input : inputs) {
    if (!fs::exists(input)) throw Error(input, "no such file or folder; check the path");
    if (fs::is_directory(input)) {
      const auto inside = io::image_files_in(input);
      if (inside.empty()) throw Error(input, "holds no image files (.png, .nii.gz, ...)");
      files.insert(files.end(), inside.begin(), inside.end());
    } else {
      files.emplace_back(input);
    }
  }
  return files;
}

}  // namespace

int convert(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("convert", err, [&]() -> int {
    CLI::App app{
        "Converts images, label maps and data sets between formats.\n"
        "  seg-convert IMAGE -o OUT.nii.gz          one file; the format follows the extension\n"
        "  seg-convert FILES.../FOLDER -o DIR       many files into DIR (--format png|nii.gz|...)\n"
        "  seg-convert DATASET -o OUT.pth | DIR     data set folder <-> tensor pack\n"
        "  seg-convert DATASET --to-notebook -o DIR the notebook's JSRT_img0_lms.pth + jsrt_seg_masks.pth\n"
        "  seg-convert --notebook IMAGES.pth MASKS.pth -o DIR | OUT.pth\n"
        "  seg-convert --jsrt RAW_DIR MASKS_DIR -o DIR | OUT.pth [--size 256]\n"
        "  seg-convert MODEL.pth|RUN_DIR -o OUT.pth [--half] [--framing-from DATA]\n"
        "      [--overlap UNDER:OVER]...            a model file\n"
        "  seg-convert WEIGHTS.pt --network NAME --data DATA -o MODEL.pth [--mean M --std S | --normalize image]\n"
        "                                           a state_dict trained in Python into a model\n"
        "  seg-convert MODEL.pth --state-dict -o WEIGHTS.pt   a model's weights for Python's load_state_dict\n"
        "Outputs are written whole or not at all.",
        "seg-convert"};
    add_max_pixels_option(app);
    Options options;
    std::string size_text;
    bool notebook = false, jsrt = false;
    int64_t train_count = 160, raw_size = 2048;
    app.add_option("inputs", options.inputs, "input files or folders")->required();
    app.add_option("-o,--out", options.output, "output file or folder")->required();
    app.add_flag("--labels", options.labels, "the inputs are label maps (nearest-neighbour resampling, uint8)");
    app.add_flag("--gray", options.gray, "turn colour images into grey (otherwise colour is an error)");
    app.add_option("--size", size_text, "resample to N x N or HxW (images: area/bilinear; labels: nearest)");
    app.add_option("--format", options.format, "file format when writing into a folder: png, nii.gz, nii, nrrd, mha, tif")
        ->capture_default_str();
    app.add_flag("--notebook", notebook, "inputs are the notebook's JSRT_img0_lms.pth and jsrt_seg_masks.pth");
    app.add_flag("--to-notebook", options.to_notebook, "write a data set as the notebook's two .pth files into the folder OUT");
    app.add_flag("--jsrt", jsrt, "inputs are the JSRT raw .IMG folder and the SCR masks folder");
    app.add_option("--train-count", train_count, "--notebook: the first N cases form the train split")->capture_default_str();
    app.add_option("--raw-size", raw_size, "--jsrt: edge of the raw images in pixels")->capture_default_str();
    app.add_option("--name", options.name, "name of the written data set");
    app.add_flag("--overwrite", options.overwrite, "replace an existing output");
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
    for (const auto& input : options.inputs) options.read_paths.add(input);
    if (!framing_from.empty()) options.read_paths.add(framing_from);
    if (!size_text.empty()) options.size = parse_size(size_text);
    if (notebook && jsrt) throw UsageError("--notebook and --jsrt exclude each other");

    weights.mean_given = mean_option->count() > 0;
    weights.std_given = std_option->count() > 0;
    if (!weights.any() && (!weights.data_path.empty() || weights.mean_given || weights.std_given ||
                           !weights.normalize.empty()))
      throw UsageError("--data, --mean, --std and --normalize go with --network (importing a PyTorch state_dict)");
    if (weights.any()) {
      convert_weights(weights, half,
                      notebook || jsrt || options.labels || options.gray || options.size || options.to_notebook ||
                          !options.name.empty() || !framing_from.empty() || !overlaps.empty(),
                      options, out);
      return kOk;
    }

    if (notebook || jsrt) {
      if (options.inputs.size() != 2)
        throw UsageError(std::string(notebook ? "--notebook needs IMAGES.pth MASKS.pth" : "--jsrt needs RAW_DIR MASKS_DIR") +
                         ", got " + std::to_string(options.inputs.size()) + " inputs");
      Dataset data;
      if (notebook) {
        data = io::import_notebook_files(options.inputs[0], options.inputs[1], train_count);
        if (options.size) data = io::resample_dataset(std::move(data), options.size->first, options.size->second);
      } else {
        const int64_t size = options.size ? options.size->first : 256;
        if (options.size && options.size->first != options.size->second)
          throw UsageError("--jsrt: --size must be square (JSRT images are square)");
        data = io::import_jsrt(options.inputs[0], options.inputs[1], size, raw_size);
      }
      write_dataset(std::move(data), options, out);
      return kOk;
    }

    if (const fs::path model = find_model_or_keep(options.inputs[0]); options.inputs.size() == 1 && is_model_path(model)) {
      if (options.labels || options.gray || options.size || options.to_notebook || !options.name.empty())
        throw UsageError("--labels, --gray, --size, --to-notebook and --name apply to images and data sets, not to a model "
                         "(a model converts with --half or without)");
      options.read_paths.add(fs::is_directory(model) ? model / "model.pth" : model);
      write_model(model, half, framing_from, overlaps, options, out);
      return kOk;
    }
    if (half || !framing_from.empty() || !overlaps.empty())
      throw UsageError("--half, --framing-from and --overlap apply to a model file or training run folder");

    if (options.inputs.size() == 1 && fs::exists(options.inputs[0]) && is_dataset_input(options.inputs[0])) {
      io::LoadOptions load;
      load.size = options.size;
      load.require_labels = false;
      const Dataset data = io::load_dataset(options.inputs[0], load);
      print_data_warnings(data, "convert", err);
      write_dataset(data, options, out);
      return kOk;
    }
    if (options.to_notebook) throw UsageError("--to-notebook needs a data set (folder with dataset.json or .pth) as input");

    const auto files = image_files(options.inputs);
    const fs::path target = options.output;
    const bool single_file = options.inputs.size() == 1 && !fs::is_directory(options.inputs[0]) && io::is_image_path(target);
    if (single_file) {
      check_output_file(target, options.read_paths, existing_policy(options), "choose another name or pass --overwrite");
      convert_file(files[0], target, options);
      out << "wrote " << target.string() << "\n";
      return kOk;
    }
    // Many files into a folder: every name checked and no existing file replaced unless asked,
    // before anything is written; the files appear together.
    const std::string extension = extension_of_format(options.format);
    const OutputFolder destination(target, options.read_paths, existing_policy(options), "pass --overwrite to replace them");
    std::vector<std::string> names;
    std::vector<fs::path> outputs;
    std::set<std::string> seen;
    for (const auto& file : files) {
      const std::string id = io::case_id_of(file);
      check_name(id, "case ID", file.string());
      if (!seen.insert(id).second)
        throw Error(file.string(), "has the same name as another input (" + id + "); rename one of them");
      names.push_back(id + extension);
      outputs.push_back(destination.file(names.back()));
    }
    destination.check(outputs);
    StagedFolder folder(target);
    for (size_t i = 0; i < files.size(); ++i) convert_file(files[i], folder.path() / names[i], options);
    folder.commit();
    out << "wrote " << files.size() << (options.labels ? " label maps" : " images") << " into " << target.string() << "\n";
    return kOk;
  });
}

}  // namespace seg::tools
