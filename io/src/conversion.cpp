#include <seg/error.h>
#include <seg/fs.h>
#include <seg/framing.h>
#include <seg/io/conversion.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/report_text.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <set>
#include <sstream>

namespace seg::io {
namespace fs = std::filesystem;

namespace {

// "<first choice> or <the caller's words for replacing>".
std::string how_to_replace(const ConversionOutput& output, const std::string& first_choice) {
  return output.replace_hint.empty() ? first_choice : first_choice + " or " + output.replace_hint;
}

void check_file_output(const ConversionOutput& output, const Inputs& inputs) {
  seg::check_output_file(output.path, inputs, output.existing, how_to_replace(output, "choose another name"));
}

// A folder output (a data set, the notebook's files) is a unit: an existing folder that is not
// empty is replaced only when asked, file by file, and never if it is an input.
const fs::path& checked_folder_output(const ConversionOutput& output) {
  const OutputFolder folder(output.path, output.inputs, output.existing, "");
  if (const fs::path input = output.inputs.inside(output.path); !input.empty())
    throw Error(output.path.string(), "holds an input of this run (" + input.string() +
                                          "), and its contents would be replaced; write into another folder");
  std::error_code ec;
  // What a killed conversion left there is not the user's: it neither fills the folder nor stays.
  if (fs::is_directory(output.path, ec)) remove_stale_temporaries(output.path);
  if (fs::exists(output.path) && !fs::is_empty(output.path, ec) && output.existing != Existing::overwrite)
    throw Error(output.path.string(), "exists and is not empty; " + how_to_replace(output, "choose a new folder"));
  return output.path;
}

void require_extension(const fs::path& target, const std::vector<std::string>& extensions, const std::string& what) {
  if (std::find(extensions.begin(), extensions.end(), target.extension().string()) == extensions.end())
    throw Error(target.string(), what);
}

// The model file that `model` (a file or a run folder) is read from.
fs::path model_file_of(const fs::path& model) { return fs::is_directory(model) ? model / "model.pth" : model; }

}  // namespace

std::vector<fs::path> image_files(const std::vector<fs::path>& inputs) {
  std::vector<fs::path> files;
  for (const auto& input : inputs) {
    if (!fs::exists(input)) throw Error(input.string(), "no such file or folder; check the path");
    if (fs::is_directory(input)) {
      const auto inside = image_files_in(input);
      if (inside.empty()) throw Error(input.string(), "holds no image files (.png, .nii.gz, ...)");
      files.insert(files.end(), inside.begin(), inside.end());
    } else {
      files.push_back(input);
    }
  }
  return files;
}

namespace {

// One image or label map in, one out.
void convert_file(const fs::path& input, const fs::path& output, const ImageConversion& how) {
  if (how.labels) {
    Image labels = read_label_map(input);
    if (how.size) labels = resize_label_map(labels, how.size->first, how.size->second);
    write_label_map(output, labels);
  } else {
    ReadOptions read_options;
    read_options.to_gray = how.to_gray;
    Image image = read_image(input, read_options);
    if (how.size) image = resize_image(image, how.size->first, how.size->second);
    write_image(output, image);
  }
}

}  // namespace

std::string convert_image_file(const fs::path& input, const ConversionOutput& output, const ImageConversion& how) {
  check_file_output(output, output.inputs);
  convert_file(input, output.path, how);
  return "wrote " + output.path.string() + "\n";
}

std::string convert_image_files(const std::vector<fs::path>& files, const std::string& extension,
                                const ConversionOutput& output, const ImageConversion& how) {
  const OutputFolder destination(output.path, output.inputs, output.existing,
                                 output.replace_hint.empty() ? "choose another folder" : output.replace_hint + " to replace them");
  std::vector<std::string> names;
  std::vector<fs::path> outputs;
  std::set<std::string> seen;
  for (const auto& file : files) {
    const std::string id = case_id_of(file);
    check_name(id, "case ID", file.string());
    if (!seen.insert(id).second)
      throw Error(file.string(), "has the same name as another input (" + id + "); rename one of them");
    names.push_back(id + extension);
    outputs.push_back(destination.file(names.back()));
  }
  destination.check(outputs);
  StagedFolder folder(output.path);
  for (size_t i = 0; i < files.size(); ++i) convert_file(files[i], folder.path() / names[i], how);
  folder.commit();
  return "wrote " + std::to_string(files.size()) + (how.labels ? " label maps" : " images") + " into " +
         output.path.string() + "\n";
}

std::string write_dataset(Dataset data, const ConversionOutput& output, const DatasetWrite& how) {
  if (!how.name.empty()) data.name = how.name;
  const fs::path& target = output.path;
  const std::string summary = std::to_string(data.size()) + " cases of " +
                              size_text_compact(data.images.size(1), data.images.size(2)) + kSizeOrder + ", " +
                              std::to_string(data.classes.size()) + " classes";
  if (how.notebook_files) {
    StagedFolder folder(checked_folder_output(output));
    export_notebook_files(data, folder.path() / "JSRT_img0_lms.pth", folder.path() / "jsrt_seg_masks.pth");
    folder.commit();
    return "wrote " + (target / "JSRT_img0_lms.pth").string() + " and " + (target / "jsrt_seg_masks.pth").string() +
           ": " + summary + "\n";
  }
  if (is_tensor_pack(target)) {
    check_file_output(output, output.inputs);
    save_tensor_pack(data, target);
    return "wrote tensor pack " + target.string() + ": " + summary + "\n";
  }
  StagedFolder folder(checked_folder_output(output));
  write_dataset_folder(data, folder.path(), how.extension);
  folder.commit();
  const std::string image_extension = image_extension_for(data, how.extension);
  std::string text = "wrote data set folder " + target.string() + ": " + summary + ", " +
                     stored_pixel_type(data.images) + " images as " + image_extension +
                     (data.labels.defined() ? ", label maps as " + how.extension : "") + "\n";
  // NIfTI, NRRD and MHA store a spacing: say when it is made up rather than the sources'.
  const bool all_spaced = !data.geometry.empty() && std::all_of(data.geometry.begin(), data.geometry.end(),
                                                                [](const Geometry& g) { return g.has_spacing; });
  if (image_extension != ".png" && image_extension != ".tif" && !all_spaced)
    text += "no spacing in the sources: 1 x 1 mm assumed\n";
  return text;
}

std::string rewrite_model(const fs::path& model_path, const ConversionOutput& output, const ModelRewrite& how) {
  Inputs inputs = output.inputs;
  inputs.add(model_file_of(model_path));
  if (!how.framing_data.empty()) inputs.add(how.framing_data);
  require_extension(output.path, {".pth"}, "a model is written as a .pth file; name it OUT.pth");
  check_file_output(output, inputs);
  Model model = load_model(model_path);
  if (!how.framing_data.empty()) {
    const Dataset data = load_dataset(how.framing_data);
    if (data.classes.entries != model.info.classes.entries)
      throw Error(how.framing_data.string(), "has another class table than the model " + model_path.string() +
                                                 "; measure the framing on the data the model was trained on");
    model.info.framing = measure_framing(data.subset("train").labels, how.framing_data.string());
  }
  if (how.overlaps) model.info.overlaps = how.overlaps(model.info.classes);
  model.stored_as = how.precision;
  save_model(model, output.path);
  std::ostringstream text;
  text << "wrote model " << output.path.string() << " (" << model.info.network.architecture << ", weights in "
       << precision_name(model.stored_as) << " with their SHA-256, " << fs::file_size(output.path) << " bytes";
  if (model.info.framing)
    text << "; framing top " << model.info.framing->top << ", bottom " << model.info.framing->bottom << ", left "
         << model.info.framing->left << ", right " << model.info.framing->right;
  for (const auto& o : model.info.overlaps)
    text << "; " << model.info.classes.name_of(o.under) << " under " << model.info.classes.name_of(o.over);
  text << ")\n";
  return text.str();
}

std::string import_weights(const fs::path& weights, const ConversionOutput& output, const WeightsImport& how) {
  Inputs inputs = output.inputs;
  inputs.add(weights);
  inputs.add(how.data);
  require_extension(output.path, {".pth"}, "a model is written as a .pth file; name it OUT.pth");
  check_file_output(output, inputs);
  LoadOptions load;
  load.require_labels = false;
  const Dataset data = load_dataset(how.data, load);
  Model model = import_state_dict(weights, data, how.how);
  model.stored_as = how.precision;
  save_model(model, output.path);
  const auto& info = model.info;
  std::ostringstream text;
  text << "wrote model " << output.path.string() << " (" << info.network.architecture << " from the PyTorch state_dict "
       << weights.string() << "; " << info.classes.size() << " classes and input size "
       << size_text_compact(info.input_size[0], info.input_size[1]) << " from " << data.source << "; normalization "
       << info.normalization.mode;
  if (info.normalization.mode == "dataset") text << " mean " << info.normalization.mean << " std " << info.normalization.std;
  text << "; weights in " << precision_name(model.stored_as) << ")\n";
  return text.str();
}

std::string export_weights(const fs::path& model_path, const ConversionOutput& output) {
  Inputs inputs = output.inputs;
  inputs.add(model_file_of(model_path));
  require_extension(output.path, {".pt", ".pth"}, "a state_dict is written as a .pt or .pth file; name it WEIGHTS.pt");
  check_file_output(output, inputs);
  const Model model = load_model(model_path);
  const StateDict state = python_state_dict(model);
  save_state_dict(state, output.path);
  const std::string& network = model.info.network.architecture;
  return "wrote state_dict " + output.path.string() + " (" + network + ", " + std::to_string(state.size()) +
         " float32 tensors named as " + (has_notebook_names(network) ? "the course notebook names them" : "segsuite names them") +
         "; in Python: model.load_state_dict(torch.load(path)))\n";
}

}  // namespace seg::io
