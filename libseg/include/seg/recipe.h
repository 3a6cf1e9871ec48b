#pragma once
// Recipes: what a training run learns and how (network, loss, optimiser, learning rate and
// schedule, epochs, batch, class weights, augmentation, normalisation, validation), kept as
// JSON files (share/recipes, docs/recipes.md) and read and written by one serialiser; apart
// from them, how a run is carried out (device, precision, checkpoints, ...).
#include <seg/augment_pipeline.h>
#include <seg/error.h>
#include <seg/postprocess.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace seg {

// Class weights of the cross-entropy loss, from the training cases' label counts (seg-weights).
struct ClassWeightRule {
  std::string mode = "power";  // "power", "inverse" or "none"
  double power = 0.35;         // p in count^-p
};

// The cases a run validates on, after every `every`-th epoch and the last (0: never). They
// choose the clean-up a model carries, so they are never the cases its figures are reported
// on: by default `holdout` cases of the train split, the k-th, 2k-th, ... case of the split as
// listed (k = the split's size / holdout, rounded down), left out of training. A named
// `split` of the data instead (the notebook's recipes: "test", as the notebook does).
struct ValidationRule {
  std::string split;
  int64_t holdout = 24;
  int64_t every = 5;
};

struct Recipe {
  std::string description;
  std::string network = "fcn";    // seg::network_registry() name
  std::string init;               // a model file or run folder whose network weights to start from
  int64_t epochs = 50;
  int64_t batch = 3;              // shuffled every epoch; the last partial batch is dropped
  uint64_t seed = 42;             // initial weights, shuffling and augmentation
  std::string loss = "ce";        // "ce" (weighted cross-entropy) or "ce+dice" (plus soft Dice)
  std::string optimizer = "adam"; // "adam" or "adamw"
  double lr = 1e-3;
  double weight_decay = 0.0;
  std::string schedule = "constant";  // "constant", "onecycle" (warm-up 30 %, cosine down) or "poly" (0.9)
  ClassWeightRule class_weights;
  std::string normalization = "dataset";  // "dataset" (z-score of the training cases) or "image"
  AugmentOptions augmentation;
  std::string train_split = "train";
  ValidationRule validation;
};

// How a run is carried out: these change its speed, not what it learns (bfloat16 and the
// order of sums aside).
struct RunSettings {
  std::string device = "auto";
  bool deterministic = false;  // LibTorch's deterministic algorithms (CUDA needs it for repeatability)
  // checkpoint.pt after an epoch once this many seconds have passed since the last one, and
  // after the first and the last epoch; 0: after every epoch.
  double checkpoint_every_s = 30;
  // "float32", or "bfloat16": the forward pass and loss under LibTorch's autocast.
  std::string precision = "float32";
  bool channels_last = false;  // weights and inputs in NHWC memory order
  // Each step recorded once as a CUDA graph and replayed (seg/cuda_graph.h); on the CPU the
  // same fixed-buffer step runs eagerly. Recordable augmentations, float32 and one process only.
  bool cuda_graph = false;
};

// What train_network is given and records: the recipe, the run's settings, and what the run
// was told besides.
struct TrainOptions {
  Recipe recipe;
  RunSettings run;
  // Structures the data's labels drew others over (JSRT/SCR: each lung under its clavicle),
  // recorded in the model for seg-segment --whole; empty: those of the init model, if any.
  std::vector<Overlap> overlaps;
  std::string recipe_name;              // the recipe the run started from (a name or a file)
  std::vector<std::string> overridden;  // recipe keys set apart from it ("lr", "augmentation.zoom")
};

// A recipe value or run setting that cannot be carried out (exit code 2). The message names
// the fields in braces, "{epochs} must be at least 1": what() shows them as recipe keys,
// message() as the caller names them (seg-train: --epochs).
class InvalidOption : public UsageError {
 public:
  explicit InvalidOption(const std::string& pattern);
  std::vector<std::string> keys() const;
  std::string message(const std::function<std::string(const std::string& key)>& name) const;

 private:
  std::string pattern_;
};

// Throws InvalidOption for a value out of its range or not one of its choices.
void check_recipe(const Recipe& recipe);
void check_run_settings(const RunSettings& run, const Recipe& recipe, bool distributed);

// The one serialiser. Every field is written; a field that is absent when reading keeps its
// default, a key that is not a field is refused (seg::Error naming `source` and the key).
std::string recipe_to_json(const Recipe& recipe, int indent = -1);
Recipe recipe_from_json(const std::string& text, const std::string& source);
std::string train_options_to_json(const TrainOptions& options, int indent = -1);
TrainOptions train_options_from_json(const std::string& text, const std::string& source);

// The stages of a recipe: one for a plain recipe; for {"description": ..., "stages": [...]}
// one per entry, the first a recipe, each later one the keys that change from the stage
// before it (a staged run starts each stage from the model the one before made). `overrides`,
// a JSON object of recipe keys, is laid over every stage (seg-train's options).
std::vector<Recipe> recipe_stages(const std::string& text, const std::string& source, const std::string& overrides = "{}");
// A plain recipe for one stage, {"stages": [...]} (every stage written whole) for several.
std::string stages_to_json(const std::vector<Recipe>& stages, int indent = -1);

// Where recipes are found by name: $SEG_RECIPE_DIR if set, else <the program's folder>/../
// share/segsuite/recipes (installed there, and copied there in the build tree).
std::filesystem::path recipe_folder();
// The names of the recipes there (file names without .json), sorted.
std::vector<std::string> recipe_names();

struct RecipeText {
  std::string text;
  std::string source;  // the file it came from
};
// The recipe `name_or_path` names: a recipe file; a training run folder (the recipe its
// run.json records); or a bare name, <name>.json in recipe_folder(). Throws seg::Error.
RecipeText read_recipe(const std::string& name_or_path);
// Whether a bare name names a recipe in recipe_folder().
bool is_recipe_name(const std::string& name);

}  // namespace seg
