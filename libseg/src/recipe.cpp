#include <seg/fs.h>
#include <seg/model_search.h>
#include <seg/models.h>
#include <seg/recipe.h>
#include <seg/weights.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <set>

namespace seg {
namespace fs = std::filesystem;
using nlohmann::json;

// Every registered augmentation by name, so that a record says what each was.
void to_json(json& j, const AugmentOptions& options) {
  j = json::object();
  for (const auto& a : augmentations()) j[a.name] = options.strength(a.name);
}

void from_json(const json& j, AugmentOptions& options) {
  for (const auto& [name, value] : j.items()) options.strengths[name] = value.get<double>();
}

// [under, over], in label values.
void to_json(json& j, const Overlap& overlap) { j = json::array({overlap.under, overlap.over}); }
void from_json(const json& j, Overlap& overlap) { overlap = {j.at(0).get<int>(), j.at(1).get<int>()}; }

// The one serialiser: each field is named once, here. (to_json / from_json are found by
// argument-dependent lookup, so they live in namespace seg beside the types.)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ClassWeightRule, mode, power)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ValidationRule, split, holdout, every)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Recipe, description, network, init, epochs, batch, seed, loss, optimizer,
                                                lr, weight_decay, schedule, class_weights, normalization, augmentation,
                                                train_split, validation)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RunSettings, device, deterministic, checkpoint_every_s, precision,
                                                channels_last, cuda_graph)

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainOptions, recipe, run, overlaps, recipe_name, overridden)

namespace {
// Every key of a recipe and of a run's options, with their defaults.
const json& default_recipe() {
  static const json defaults = [] {
    const Recipe recipe;
    return json(recipe);
  }();
  return defaults;
}

const json& default_train_options() {
  static const json defaults = [] {
    const TrainOptions options;
    return json(options);
  }();
  return defaults;
}

// Refuses keys of `given` that `known` (a default object written by the serialiser) lacks,
// object by object, naming the key with its path ("augmentation.flip").
void refuse_unknown_keys(const json& given, const json& known, const std::string& source, const std::string& path = "") {
  if (!given.is_object()) throw Error(source, (path.empty() ? "the recipe" : "\"" + path + "\"") + " must be a JSON object");
  for (const auto& [key, value] : given.items()) {
    const std::string name = path.empty() ? key : path + "." + key;
    if (!known.contains(key)) {
      std::vector<std::string> keys;
      for (const auto& [k, v] : known.items()) keys.push_back(k);
      std::string list;
      for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
      throw Error(source, "unknown key \"" + name + "\" (" + (path.empty() ? "the keys" : "the keys of \"" + path + "\"") +
                              " are: " + list + ")");
    }
    const json& expected = known.at(key);
    if (expected.is_object()) {
      refuse_unknown_keys(value, expected, source, name);
      continue;
    }
    // A value the serialiser would convert quietly: null to the default, 1.7 epochs to 1, a
    // negative seed to a huge one.
    if (value.is_null()) throw Error(source, "\"" + name + "\" is null: give a value, or leave the key out for the default");
    if (expected.is_number_integer() && value.is_number() && !value.is_number_integer())
      throw Error(source, "\"" + name + "\" must be a whole number, not " + value.dump());
    if (expected.is_number_unsigned() && value.is_number_integer() && !value.is_number_unsigned())
      throw Error(source, "\"" + name + "\" must be 0 or more, not " + value.dump());
  }
}

json parse_object(const std::string& text, const std::string& source) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error(source, "is not valid JSON");
  if (!j.is_object()) throw Error(source, "must hold a JSON object");
  return j;
}

template <class T>
T checked_from_json(const json& j, const json& known, const std::string& source) {
  refuse_unknown_keys(j, known, source);
  try {
    return j.get<T>();
  } catch (const json::exception& e) {
    throw Error(source, "malformed: " + json_reason(e));
  }
}

bool one_of(const std::string& value, const std::vector<std::string>& choices) {
  return std::find(choices.begin(), choices.end(), value) != choices.end();
}

std::string quoted_list(const std::vector<std::string>& choices) {
  std::string text;
  for (size_t k = 0; k < choices.size(); ++k)
    text += (k == 0 ? "" : k + 1 == choices.size() ? " or " : ", ") + ("\"" + choices[k] + "\"");
  return text;
}

void require_choice(const std::string& key, const std::string& value, const std::vector<std::string>& choices) {
  if (!one_of(value, choices)) throw InvalidOption("{" + key + "} must be " + quoted_list(choices) + ", not \"" + value + "\"");
}

// Checkpoints of runs begun before recipes held one flat object of options.
json from_flat_options(const json& flat) {
  json recipe = {{"network", flat.at("architecture")}, {"init", flat.value("init_from", "")},
                 {"class_weights", {{"mode", flat.at("weight_mode")}, {"power", flat.at("weight_power")}}},
                 {"validation", {{"split", flat.at("val_split")}, {"holdout", 0}, {"every", flat.at("val_every")}}},
                 {"augmentation", json::object()}};
  for (const char* key : {"epochs", "batch", "seed", "loss", "optimizer", "lr", "weight_decay", "schedule", "normalization",
                          "train_split"})
    if (flat.contains(key)) recipe[key] = flat[key];
  for (const auto& a : augmentations())
    if (flat.contains("augment_" + a.name)) recipe["augmentation"][a.name] = flat["augment_" + a.name];
  json run = json::object();
  for (const char* key : {"device", "deterministic", "checkpoint_every_s", "precision", "channels_last", "cuda_graph"})
    if (flat.contains(key)) run[key] = flat[key];
  return {{"recipe", recipe}, {"run", run}, {"overlaps", flat.value("overlaps", json::array())}};
}
}  // namespace

namespace {
// The pattern with each {key} replaced by replace(key).
std::string fill_fields(const std::string& pattern, const std::function<std::string(const std::string&)>& replace) {
  std::string text;
  size_t at = 0;
  for (size_t open = pattern.find('{'); open != std::string::npos; open = pattern.find('{', at)) {
    const size_t close = pattern.find('}', open);
    if (close == std::string::npos) break;
    text += pattern.substr(at, open - at) + replace(pattern.substr(open + 1, close - open - 1));
    at = close + 1;
  }
  return text + pattern.substr(at);
}
}  // namespace

InvalidOption::InvalidOption(const std::string& pattern)
    : UsageError(fill_fields(pattern, [](const std::string& key) { return key; })), pattern_(pattern) {}

std::vector<std::string> InvalidOption::keys() const {
  std::vector<std::string> found;
  fill_fields(pattern_, [&](const std::string& key) {
    found.push_back(key);
    return key;
  });
  return found;
}

std::string InvalidOption::message(const std::function<std::string(const std::string&)>& name) const {
  return fill_fields(pattern_, name);
}

void check_recipe(const Recipe& r) {
  if (!one_of(r.network, network_names()))
    throw InvalidOption("{network} \"" + r.network + "\" is not one of the networks (" + quoted_list(network_names()) + ")");
  if (r.epochs < 1) throw InvalidOption("{epochs} must be at least 1");
  if (r.batch < 1) throw InvalidOption("{batch} must be at least 1");
  // The optimisers scale float32 tensors by these: a larger value overflows mid-step.
  constexpr double kFloatMax = std::numeric_limits<float>::max();
  if (!(r.lr >= 0 && r.lr <= kFloatMax)) throw InvalidOption("{lr} must be 0 or more, and a float32 number");
  if (!(r.weight_decay >= 0 && r.weight_decay <= kFloatMax))
    throw InvalidOption("{weight_decay} must be 0 or more, and a float32 number");
  require_choice("loss", r.loss, {"ce", "ce+dice"});
  require_choice("optimizer", r.optimizer, {"adam", "adamw"});
  require_choice("schedule", r.schedule, {"constant", "onecycle", "poly"});
  require_choice("normalization", r.normalization, {"dataset", "image"});
  require_choice("class_weights.mode", r.class_weights.mode, {"power", "inverse", "none"});
  if (!(r.class_weights.power > 0 && r.class_weights.power <= kMaxWeightPower))
    throw InvalidOption("{class_weights.power} must be more than 0 and at most " +
                        std::to_string(static_cast<int>(kMaxWeightPower)) + " (0.35 is the notebook's)");
  for (const auto& a : augmentations()) {
    const double s = r.augmentation.strength(a.name);
    if (!(s >= a.min_strength && s <= a.max_strength))
      throw InvalidOption("{augmentation." + a.name + "} must be " + strength_range(a));
  }
  if (r.train_split.empty()) throw InvalidOption("{train_split} must name a split");
  if (r.validation.every < 0) throw InvalidOption("{validation.every} must be 0 (never) or more");
  if (r.validation.holdout < 0) throw InvalidOption("{validation.holdout} must be 0 or more");
  if (r.validation.split == r.train_split)
    throw InvalidOption("{validation.split} must not be the {train_split}: validation cases are never trained on");
}

void check_run_settings(const RunSettings& run, const Recipe& recipe, bool distributed) {
  if (!(run.checkpoint_every_s >= 0)) throw InvalidOption("{checkpoint_every_s} must be 0 or more seconds");
  require_choice("precision", run.precision, {"float32", "bfloat16"});
  if (!run.cuda_graph) return;
  // A recorded graph replays fixed shapes with no host reads: augmentations that draw shapes or
  // paddings per step cannot be in it.
  std::vector<std::string> unrecordable;
  const AugmentPipeline pipeline(recipe.augmentation);
  for (const auto* step : pipeline.steps())
    if (!step->recordable) unrecordable.push_back("{augmentation." + step->name + "}");
  if (!unrecordable.empty()) {
    std::string recordable, off;
    for (const auto& a : augmentations())
      if (a.recordable) recordable += (recordable.empty() ? "" : ", ") + ("{augmentation." + a.name + "}");
    for (const auto& u : unrecordable) off += (off.empty() ? "" : ", ") + u;
    throw InvalidOption("{cuda_graph} records " + recordable + " only; set " + off + " to 0");
  }
  if (run.precision != "float32" || run.channels_last)
    throw InvalidOption("{cuda_graph} runs in float32 and the default memory order (no {precision} bfloat16, no {channels_last})");
  if (distributed) throw InvalidOption("{cuda_graph} runs one process (data-parallel steps exchange gradients on the host)");
}

std::string recipe_to_json(const Recipe& recipe, int indent) { return json(recipe).dump(indent); }

Recipe recipe_from_json(const std::string& text, const std::string& source) {
  return checked_from_json<Recipe>(parse_object(text, source), default_recipe(), source);
}

std::string train_options_to_json(const TrainOptions& options, int indent) { return json(options).dump(indent); }

TrainOptions train_options_from_json(const std::string& text, const std::string& source) {
  json j = parse_object(text, source);
  if (j.contains("architecture")) j = from_flat_options(j);
  return checked_from_json<TrainOptions>(j, default_train_options(), source);
}

std::vector<Recipe> recipe_stages(const std::string& text, const std::string& source, const std::string& overrides) {
  const json given = parse_object(text, source);
  const json patch = parse_object(overrides, "the options given");
  refuse_unknown_keys(patch, default_recipe(), "the options given");
  std::vector<json> stages;
  if (given.contains("stages")) {
    refuse_unknown_keys(given, {{"description", ""}, {"stages", json::array()}}, source);
    if (!given["stages"].is_array() || given["stages"].empty()) throw Error(source, "\"stages\" must be a list of recipes");
    stages.assign(given["stages"].begin(), given["stages"].end());
  } else {
    stages.push_back(given);
  }
  std::vector<Recipe> recipes;
  json merged = default_recipe();
  for (size_t k = 0; k < stages.size(); ++k) {
    const std::string where = stages.size() > 1 ? source + " (stage " + std::to_string(k + 1) + ")" : source;
    refuse_unknown_keys(stages[k], merged, where);
    merged.merge_patch(stages[k]);
    // A staged recipe's description is its first stage's; later stages have their own or none.
    if (given.contains("stages") && !stages[k].contains("description"))
      merged["description"] = k == 0 ? given.value("description", "") : "";
    json stage = merged;
    stage.merge_patch(patch);
    recipes.push_back(checked_from_json<Recipe>(stage, default_recipe(), where));
  }
  return recipes;
}

std::string stages_to_json(const std::vector<Recipe>& stages, int indent) {
  if (stages.size() == 1) return recipe_to_json(stages.front(), indent);
  return json{{"stages", stages}}.dump(indent);
}

fs::path recipe_folder() {
  if (const char* dir = std::getenv("SEG_RECIPE_DIR"); dir != nullptr && *dir != '\0') return dir;
  // Beside the program, as installed and as the build tree lays it out (cmake/install.cmake).
  const fs::path executable = program_file();
  return executable.empty() ? fs::path("share/segsuite/recipes") : suite_data_folder(executable, "recipes");
}

std::vector<std::string> recipe_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(recipe_folder(), ec))
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

bool is_recipe_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && fs::is_regular_file(recipe_folder() / (name + ".json"));
}

namespace {

// A recipe file's text: a regular file of at most 1 MiB (not a FIFO or device that reads forever).
std::string read_recipe_file(const fs::path& file) {
  std::error_code ec;
  if (fs::exists(file) && !fs::is_regular_file(file))
    throw Error(file.string(), "is not a regular file; a recipe is a JSON file");
  if (fs::exists(file) && fs::file_size(file, ec) > (size_t{1} << 20))
    throw Error(file.string(), "is larger than 1 MiB; a recipe is a small JSON file");
  return read_file(file);
}

}  // namespace

RecipeText read_recipe(const std::string& name_or_path) {
  const fs::path path(name_or_path);
  if (fs::is_directory(path)) {
    const fs::path run_json = path / "run.json";
    if (!fs::exists(run_json)) throw Error(name_or_path, "is a folder but not a training run (no run.json)");
    const json run = parse_object(read_recipe_file(run_json), run_json.string());
    if (!run.contains("recipe")) throw Error(run_json.string(), "records no recipe (a run begun before recipes were recorded)");
    return {run["recipe"].dump(), run_json.string()};
  }
  if (is_recipe_name(name_or_path)) {
    const fs::path file = recipe_folder() / (name_or_path + ".json");
    return {read_recipe_file(file), file.string()};
  }
  if (fs::exists(path) || name_or_path.find('/') != std::string::npos || path.extension() == ".json")
    return {read_recipe_file(path), path.string()};
  std::string names;
  for (const auto& n : recipe_names()) names += (names.empty() ? "" : ", ") + n;
  throw Error(name_or_path, "is neither a recipe file nor a recipe's name (" + recipe_folder().string() +
                                " holds: " + (names.empty() ? "none" : names) + ")");
}

}  // namespace seg
