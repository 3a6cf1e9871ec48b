#include <seg/error.h>
#include <seg/model_description.h>
#include <seg/model_file.h>
#include <seg/model_search.h>
#include <seg/models.h>
#include <seg/quality.h>
#include <seg/report_text.h>
#include <seg/validation.h>

#include <nlohmann/json.hpp>

#include <iomanip>
#include <sstream>

namespace seg {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// "JSRT-SCR, split train (160 cases), 100 epochs on cpu": one training run's record, in brief.
std::string training_summary(const json& provenance) {
  const int64_t epochs = provenance.value("epochs_done", int64_t{0});
  std::ostringstream s;
  s << provenance.value("dataset", std::string("?")) << ", split " << provenance.value("train_split", std::string("?"))
    << " (" << provenance.value("train_cases", 0) << " cases), " << epochs << (epochs == 1 ? " epoch on " : " epochs on ")
    << provenance.value("device", std::string("?"));
  return s.str();
}

// The models a fine-tune started from, each with its own record, the nearest first.
void write_lineage(std::ostream& out, const json& provenance) {
  for (const json* run = &provenance; run->is_object(); run = &(*run)["init"]) {
    // (models trained before recipes recorded options.init_from)
    const auto recipe = run->value("recipe", run->value("options", json::object()));
    const std::string init_from = recipe.is_object() ? recipe.value("init", recipe.value("init_from", std::string())) : std::string();
    if (init_from.empty()) return;
    out << "started from: " << init_from;
    if (!run->contains("init") || !(*run)["init"].is_object()) {
      out << " (this model keeps no record of it)\n";
      return;
    }
    const auto& init = (*run)["init"];
    out << ", trained on " << training_summary(init);
    if (init.contains("val_mean_dice") && init["val_mean_dice"].is_number())
      out << ", validation mean Dice " << std::fixed << std::setprecision(4) << init["val_mean_dice"].get<double>()
          << std::defaultfloat;
    out << "\n";
  }
}

// What training recorded: the data, the validation figures, the recipe, and the lineage.
void write_training_record(std::ostream& out, const json& provenance, const ClassTable& classes) {
  out << "trained on: " << training_summary(provenance) << "\n";
  if (provenance.contains("val_mean_dice")) {
    std::ostringstream line;
    const std::string cases = provenance.contains("validation") ? provenance["validation"].get<std::string>()
                                                                   : "split " + provenance.value("val_split", std::string("?"));
    line << std::fixed << std::setprecision(4) << "validation Dice (" << cases << ", epoch "
         << provenance.value("val_epoch", 0) << "): mean " << provenance["val_mean_dice"].get<double>();
    const auto dice = provenance["val_dice"].get<std::vector<double>>();
    for (size_t k = 0; k < dice.size() && k + 1 < classes.entries.size(); ++k)
      line << ", " << classes.entries[k + 1].first << " " << dice[k];
    out << line.str() << "\n";
  }
  if (provenance.contains("val_cases"))
    out << "validation cases: " << join(provenance["val_cases"].get<std::vector<std::string>>(), " ") << "\n";
  if (provenance.contains("recipe"))
    out << "recipe (" << provenance.value("recipe_name", std::string("?")) << "): " << provenance["recipe"].dump() << "\n";
  if (provenance.contains("options")) out << "training options: " << provenance["options"].dump() << "\n";
  write_lineage(out, provenance);
}

}  // namespace

std::string model_description_json(const fs::path& path, const Model& model) {
  const auto provenance = json::parse(model.info.provenance_json, nullptr, false);
  auto j = json::parse(model_info_to_json(model.info));
  j["path"] = path.string();
  j["trainable_parameters"] = count_trainable_parameters(*model.net);
  j["weights_stored_as"] = precision_name(model.stored_as);
  // load_model verified both (or refused the file): the record says which protection it has.
  j["integrity"] = {{"crc32_of_every_record", "verified"},
                    {"weights_sha256", model.weights_sha256.empty() ? json() : json(model.weights_sha256)}};
  if (provenance.is_object() && provenance.contains("val_cases")) j["val_cases"] = provenance["val_cases"];
  return j.dump(1) + "\n";
}

std::string model_description_text(const fs::path& path, const Model& model) {
  const auto& info = model.info;
  const auto provenance = json::parse(info.provenance_json, nullptr, false);
  std::ostringstream out;
  out << "model: " << path.string() << "\n";
  out << "network: " << info.network.architecture << ", " << info.network.in_channels << " input channel(s), "
      << info.network.num_classes << " classes, " << count_trainable_parameters(*model.net)
      << " trainable parameters (stored as " << precision_name(model.stored_as) << ")\n";
  out << "integrity: CRC-32 of every record"
      << (model.weights_sha256.empty() ? " (verified); no SHA-256 of the weights (an older file: seg-convert MODEL -o NEW.pth adds one)"
                                       : ", SHA-256 of the weights (verified)")
      << "\n";
  out << "classes:";
  for (const auto& [name, value] : info.classes.entries) out << " " << value << " " << name;
  out << "\ninput size: " << size_text_with_order(info.input_size.at(0), info.input_size.at(1)) << "\n";
  out << "normalization: "
      << (info.normalization.mode == "image" ? std::string("image (each image on its own, percentile-clipped)")
                                             : "dataset (mean " + std::to_string(info.normalization.mean) + ", std " +
                                                   std::to_string(info.normalization.std) + ")")
      << "\n";
  if (info.training_intensity)
    out << "training intensities: " << number_text(info.training_intensity->low) << " .. "
        << number_text(info.training_intensity->high)
        << " (0.5 and 99.5 percentiles of the train split; seg-segment warns about films far outside them)\n";
  out << "post-processing (seg-segment runs it): "
      << (info.postprocessing.empty() ? "none" : join(info.postprocessing, ", ")) << "\n";
  if (info.framing) {
    std::ostringstream line;
    line << std::fixed << std::setprecision(3) << "framing (seg-segment reframes to it): margins around the structures "
         << "top " << info.framing->top << ", bottom " << info.framing->bottom << ", left " << info.framing->left
         << ", right " << info.framing->right << " of their box";
    out << line.str() << "\n";
  } else {
    out << "framing: not recorded (seg-segment segments in one pass; seg-convert --framing-from adds it)\n";
  }
  if (!info.overlaps.empty()) {
    std::vector<std::string> pairs;
    for (const auto& o : info.overlaps)
      pairs.push_back(info.classes.name_of(o.under) + " under " + info.classes.name_of(o.over));
    out << "drawn over in its training labels (seg-segment --whole restores): " << join(pairs, ", ") << "\n";
  }
  if (info.quality) out << "quality control (seg-segment --qc): " << quality_record_summary(*info.quality) << "\n";
  if (provenance.is_object() && provenance.contains("dataset")) write_training_record(out, provenance, info.classes);
  if (provenance.is_object() && provenance.value("imported", json()).is_object())
    out << "imported: from the PyTorch state_dict " << provenance["imported"].value("from", std::string("?")) << " as "
        << provenance["imported"].value("network", std::string("?")) << "\n";
  return out.str();
}

std::string recorded_figure(const std::string& provenance_json) {
  const auto provenance = json::parse(provenance_json, nullptr, false);
  if (!provenance.is_object() || !provenance.contains("val_mean_dice") || !provenance["val_mean_dice"].is_number())
    return "-";
  const bool on_test =
      provenance.value("val_split", std::string()) == "test" || provenance.value("validation", std::string()) == "split test";
  const auto cases = provenance.value("val_cases", json());
  const bool held_out =
      !on_test && cases.is_array() && !cases.empty() && held_out_of_training(provenance.value("validation", std::string()));
  if (!on_test && !held_out) return "-";
  std::ostringstream figure;
  figure << (on_test ? "test" : "validation") << " mean Dice " << std::fixed << std::setprecision(4)
         << provenance["val_mean_dice"].get<double>();
  if (held_out) figure << " (" << cases.size() << " held-out cases)";
  return figure.str();
}

std::vector<ModelListing> list_found_models(const std::vector<fs::path>& folders) {
  std::vector<ModelListing> listing;
  for (const auto& found : list_models(folders)) {
    ModelListing entry;
    entry.name = found.name;
    entry.path = found.path;
    entry.bytes = fs::file_size(found.path);
    try {
      const Model model = load_model(found.path);
      entry.network = model.info.network.architecture;
      entry.classes = model.info.classes.size();
      entry.figure = recorded_figure(model.info.provenance_json);
    } catch (const Error& e) {
      entry.figure = std::string("unreadable: ") + e.what();
    }
    listing.push_back(entry);
  }
  return listing;
}

std::string model_listing_json(const std::vector<ModelListing>& models) {
  ordered_json list = ordered_json::array();
  for (const auto& m : models)
    list.push_back({{"name", m.name}, {"network", m.network}, {"classes", m.classes ? ordered_json(*m.classes) : ordered_json()},
                    {"bytes", m.bytes}, {"figure", m.figure}, {"path", m.path.string()}});
  return list.dump(2) + "\n";
}

std::string model_listing_text(const std::vector<ModelListing>& models, const std::vector<fs::path>& folders) {
  std::string text;
  for (const auto& m : models)
    text += m.name + "  " + m.network + "  " + (m.classes ? std::to_string(*m.classes) + " classes" : std::string("-")) +
            "  " + file_size_text(m.bytes) + "  " + m.figure + "  " + m.path.string() + "\n";
  if (models.empty()) {
    std::vector<std::string> places;
    for (const auto& folder : folders) places.push_back(folder.string());
    text += "no models in " + join(places, ", ") + " (SEG_MODEL_PATH adds folders)\n";
  }
  return text;
}

}  // namespace seg
