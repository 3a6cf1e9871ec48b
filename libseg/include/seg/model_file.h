#pragma once
// A trained model in one file: network, weights and everything inference needs.
#include <seg/dataset.h>
#include <seg/framing.h>
#include <seg/intensity_range.h>
#include <seg/models.h>
#include <seg/postprocess.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace seg {

struct QualityRecord;  // seg/quality.h

// How raw pixel values become network input.
//   dataset: (x - mean) / std with mean and std of the training images (the notebook's
//            z-normalisation, computed on our split);
//   image:   per image, clip to its 0.5..99.5 percentiles, then (x - mean) / std of that image
//            (robust to other scanners' exposure and bit depth).
struct Normalization {
  std::string mode = "dataset";
  double mean = 0.0;
  double std = 1.0;
};

// The largest input side a model file may state: beyond it a damaged or edited file would make
// seg-segment allocate gigabytes before any check of a film.
inline constexpr int64_t kMaxInputSide = 16384;

struct ModelInfo {
  NetworkSpec network;
  ClassTable classes;                 // channel k of the output is classes.entries[k]
  std::vector<int64_t> input_size;    // [H, W] the network was trained at
  Normalization normalization;
  // Clean-up steps (seg::postprocessing_steps() names) that helped on the validation split at
  // the end of training; seg-segment runs them unless told otherwise.
  std::vector<std::string> postprocessing;
  // Where the structures sat in the training images (seg-segment's reframing); absent in files
  // written before 2026-12-05 (seg-convert --framing-from adds it).
  std::optional<Framing> framing;
  // Structures the training labels drew others over (JSRT/SCR: each lung under its clavicle),
  // for seg-segment --whole; empty when not recorded (seg-convert --overlap adds them).
  std::vector<Overlap> overlaps;
  // The train split's intensity range, recorded for "dataset" normalisation so that
  // seg-segment can warn about films on another scale; absent in older files.
  std::optional<IntensityRange> training_intensity;
  // The quality estimator seg-segment --qc runs (seg-evaluate --fit-qc fits it); absent in
  // older files and until fitted.
  std::shared_ptr<const QualityRecord> quality;
  std::string provenance_json = "{}"; // data set, split, epochs, seed, final metrics, ...
};

// How the weights are stored in the file; in memory they are float32 either way. float16
// halves the file (a shipped model must fit in 10 MB) and changes the masks only by rounding.
enum class WeightPrecision { float32, float16 };
const char* precision_name(WeightPrecision precision);  // "float32", "float16"

struct Model {
  ModelInfo info;
  SegNet net;
  WeightPrecision stored_as = WeightPrecision::float32;  // what load_model found, save_model writes
  // The SHA-256 of the weights that load_model found in the metadata and verified; empty for a
  // file written before models carried one (its records' CRC-32s still guard it).
  std::string weights_sha256{};
};

// A file Python's torch.load reads: {"format": "segsuite-model-1", "metadata": <JSON text>,
// "state_dict": {name: tensor}}, tensors on the CPU, parameters as model.stored_as says; the
// metadata carries "weights_sha256", the SHA-256 of the state_dict (docs/formats.md).
// Throws seg::Error if a weight does not fit in float16.
void save_model(const Model& model, const std::filesystem::path& path);

// Reads our model file, or a run folder holding model.pth. Throws seg::Error naming the file
// when the file is damaged (a record fails its CRC-32, the weights their SHA-256), is not a
// model, or holds NaN or infinite weights.
Model load_model(const std::filesystem::path& path_or_run);

// Whether `path` is one of our model files (reads its pickle; false for anything else). A
// damaged file counts while its bytes still name our format, so that load_model says what is
// wrong with it.
bool is_model_file(const std::filesystem::path& path);
// A model file (any name: a .pth file, or another whose bytes begin as a zip archive's), or a
// training run folder holding one (model.pth and no dataset.json): what load_model reads.
bool is_model_path(const std::filesystem::path& path);

// Loads a plain {name: tensor} dict (Python: torch.save(dict(model.state_dict()), f)) or the
// "state_dict" of our model file into `net`; every parameter must match in name and shape and
// be finite.
void load_state_dict(torch::nn::Module& net, const std::filesystem::path& path);

// Throws seg::Error naming `source` unless every overlap names two different structures
// (values other than 0) of `classes`.
void check_overlaps(const std::vector<Overlap>& overlaps, const ClassTable& classes, const std::string& source);

std::string model_info_to_json(const ModelInfo& info);
ModelInfo model_info_from_json(const std::string& json_text, const std::string& source);

}  // namespace seg
