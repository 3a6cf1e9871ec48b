#pragma once
// Conversions between the forms the suite reads and writes (seg-convert): images and label maps
// between formats, a data set into a tensor pack, a folder or the notebook's files, a model
// rewritten (weight precision, framing, overlaps), a PyTorch state_dict into a model and a
// model's weights back. Each writes its output whole or not at all, and returns the line(s)
// saying what it wrote.
#include <seg/dataset.h>
#include <seg/model_file.h>
#include <seg/output.h>
#include <seg/state_dict.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace seg::io {

// Where a conversion writes, and what it may replace.
struct ConversionOutput {
  std::filesystem::path path;
  // What the run reads, never an output; each conversion adds the files it reads itself.
  Inputs inputs;
  Existing existing = Existing::refuse;  // refuse or overwrite
  // The caller's words for asking to replace an existing output ("pass --overwrite"), which a
  // refusal ends with; empty: the refusal says only to choose another name.
  std::string replace_hint;
};

// The image files of `inputs`: files as given, and each folder's image files (not
// recursively, sorted). Throws seg::Error for an input that does not exist and for a folder
// without image files.
std::vector<std::filesystem::path> image_files(const std::vector<std::filesystem::path>& inputs);

struct ImageConversion {
  bool labels = false;   // label maps: nearest-neighbour resampling, uint8
  bool to_gray = false;  // colour images become grey; otherwise colour is an error
  std::optional<std::pair<int64_t, int64_t>> size;  // resample to height x width
};

// One image or label map into the file output.path, in the format its extension names.
std::string convert_image_file(const std::filesystem::path& input, const ConversionOutput& output,
                               const ImageConversion& how);

// Many into the folder output.path, as <case ID><extension> (".png", ".nii.gz", ...). Every
// name and existing file is checked before the first is written (two inputs of one case ID are
// an error), and the files appear together.
std::string convert_image_files(const std::vector<std::filesystem::path>& files, const std::string& extension,
                                const ConversionOutput& output, const ImageConversion& how);

struct DatasetWrite {
  std::string name;                // the written data set's name, when given
  bool notebook_files = false;     // the notebook's JSRT_img0_lms.pth and jsrt_seg_masks.pth
  std::string extension = ".png";  // a data set folder's files (io::write_dataset_folder)
};

// `data` into output.path: the notebook's two files into that folder (notebook_files), a
// tensor pack (a .pth or .pt path) or a data set folder. An existing folder that is not empty
// is replaced, file by file, only when output.existing is overwrite.
std::string write_dataset(Dataset data, const ConversionOutput& output, const DatasetWrite& how);

struct ModelRewrite {
  WeightPrecision precision = WeightPrecision::float32;
  // A data set whose train split's labels give the framing to record (it must have the
  // model's class table); empty: the model keeps its own.
  std::filesystem::path framing_data;
  // The overlaps to record, made from the model's class table; unset: the model keeps its own.
  std::function<std::vector<Overlap>(const ClassTable& classes)> overlaps;
};

// The model file (or run folder) `model` written again into output.path (.pth), with its
// weights' SHA-256.
std::string rewrite_model(const std::filesystem::path& model, const ConversionOutput& output, const ModelRewrite& how);

struct WeightsImport {
  std::filesystem::path data;  // the data set that gives the classes, input size and normalisation
  StateDictImport how;
  WeightPrecision precision = WeightPrecision::float32;
};

// A PyTorch state_dict (torch.save(model.state_dict(), f)) made into a model file output.path
// (.pth), as import_state_dict makes it.
std::string import_weights(const std::filesystem::path& weights, const ConversionOutput& output,
                           const WeightsImport& how);

// A model's weights as a plain state_dict for Python's load_state_dict (float32, Python's
// names) into output.path (.pt or .pth).
std::string export_weights(const std::filesystem::path& model, const ConversionOutput& output);

}  // namespace seg::io
