// What seg-inspect says of a model file and of the models found by name
// (seg/model_description.h), without the tool.
#include <seg/fs.h>
#include <seg/model_description.h>
#include <seg/model_file.h>
#include <seg/models.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "small_model.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::testing::ScratchDir;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A fine-tune of "base.pth" validated on the test split, whose base was itself trained from
// "older.pth" (of which nothing is recorded).
std::string fine_tune_record() {
  const nlohmann::json base = {{"dataset", "JSRT"}, {"train_split", "train"}, {"train_cases", 160}, {"epochs_done", 1},
                               {"device", "cpu"}, {"val_mean_dice", 0.8}, {"recipe", {{"init", "older.pth"}}}};
  return nlohmann::json{{"dataset", "shapes"},
                        {"train_split", "train"},
                        {"train_cases", 12},
                        {"epochs_done", 30},
                        {"device", "cpu"},
                        {"validation", "split test"},
                        {"val_epoch", 28},
                        {"val_dice", {0.875, 0.9375}},
                        {"val_mean_dice", 0.9},
                        {"val_cases", {"s10", "s11"}},
                        {"recipe", {{"init", "base.pth"}}},
                        {"init", base}}
      .dump();
}

}  // namespace

TEST(ModelDescription, TextSaysNetworkClassesNormalisationAndTrainingRecord) {
  auto model = seg::testing::small_model(1);
  model.info.provenance_json = fine_tune_record();
  model.info.postprocessing = {"largest-component", "fill-holes"};
  model.info.overlaps = {{1, 2}};
  const std::string text = seg::model_description_text("m.pth", model);
  const std::string parameters = std::to_string(seg::count_trainable_parameters(*model.net));
  for (const std::string& line : std::vector<std::string>{
           "model: m.pth\n", "network: fcn, 1 input channel(s), 3 classes, " + parameters + " trainable parameters (stored as float32)\n",
        "classes: 0 background 1 label_1 2 label_2\n", "input size: 32 x 32 (height x width)\n",
        "normalization: dataset (mean 100.000000, std 20.000000)\n",
        "post-processing (seg-segment runs it): largest-component, fill-holes\n", "framing: not recorded",
        "drawn over in its training labels (seg-segment --whole restores): label_1 under label_2\n",
        "trained on: shapes, split train (12 cases), 30 epochs on cpu\n",
        "validation Dice (split test, epoch 28): mean 0.9000, label_1 0.8750, label_2 0.9375\n",
        "validation cases: s10 s11\n",
        "started from: base.pth, trained on JSRT, split train (160 cases), 1 epoch on cpu, validation mean Dice 0.8000\n"
        "started from: older.pth (this model keeps no record of it)\n"})
    EXPECT_TRUE(contains(text, line)) << line << "\n" << text;
  EXPECT_FALSE(contains(text, "imported:")) << text;
  EXPECT_FALSE(contains(text, "SHA-256 of the weights (verified)")) << text;  // only load_model verifies one

  model.info.framing = seg::Framing{0.25, 0.5, 0.125, 1};
  model.info.provenance_json = R"({"imported": {"from": "w.pt", "network": "fcn"}})";
  const std::string imported = seg::model_description_text("m.pth", model);
  EXPECT_TRUE(contains(imported, "margins around the structures top 0.250, bottom 0.500, left 0.125, right 1.000 of their box\n"))
      << imported;
  EXPECT_TRUE(contains(imported, "imported: from the PyTorch state_dict w.pt as fcn\n")) << imported;
  EXPECT_FALSE(contains(imported, "trained on:")) << imported;
}

TEST(ModelDescription, JsonIsTheMetadataWithWhatTheFileAdds) {
  ScratchDir tmp;
  auto model = seg::testing::small_model(2);
  model.info.provenance_json = fine_tune_record();
  model.stored_as = seg::WeightPrecision::float16;
  seg::save_model(model, tmp / "m.pth");
  const auto loaded = seg::load_model(tmp / "m.pth");
  const auto j = nlohmann::json::parse(seg::model_description_json(tmp / "m.pth", loaded));
  EXPECT_EQ(j["path"], (tmp / "m.pth").string());
  EXPECT_EQ(j["architecture"], "fcn");
  EXPECT_EQ(j["trainable_parameters"], seg::count_trainable_parameters(*model.net));
  EXPECT_EQ(j["weights_stored_as"], "float16");
  EXPECT_EQ(j["integrity"]["weights_sha256"], loaded.weights_sha256);
  EXPECT_EQ(j["val_cases"], nlohmann::json({"s10", "s11"}));
  EXPECT_TRUE(contains(seg::model_description_text(tmp / "m.pth", loaded), ", SHA-256 of the weights (verified)\n"));
}

TEST(ModelDescription, RecordedTestFigureOnlyForTheWholeTestSplit) {
  EXPECT_EQ(seg::recorded_test_figure(fine_tune_record()), "test mean Dice 0.9000");
  EXPECT_EQ(seg::recorded_test_figure(R"({"val_split": "test", "val_mean_dice": 0.5})"), "test mean Dice 0.5000");
  EXPECT_EQ(seg::recorded_test_figure(R"({"validation": "12 cases of split train", "val_mean_dice": 0.9})"), "-");
  EXPECT_EQ(seg::recorded_test_figure(R"({"val_split": "test"})"), "-");
  EXPECT_EQ(seg::recorded_test_figure("not json"), "-");
}

TEST(ModelDescription, ListingOfFoundModelsNamesTheUnreadable) {
  ScratchDir tmp;
  auto model = seg::testing::small_model(3);
  model.info.provenance_json = fine_tune_record();
  fs::create_directories(tmp / "first");
  fs::create_directories(tmp / "second");
  seg::save_model(model, tmp / "first" / "good.pth");
  seg::write_file_atomically(tmp / "second" / "broken.pth", "not a model");
  seg::write_file_atomically(tmp / "second" / "good.pth", "hidden by the first folder's");
  const std::vector<fs::path> folders{tmp / "first", tmp / "second"};
  const auto found = seg::list_found_models(folders);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].name, "good");
  EXPECT_EQ(found[0].network, "fcn");
  EXPECT_EQ(found[0].classes, 3);
  EXPECT_EQ(found[0].test, "test mean Dice 0.9000");
  EXPECT_EQ(found[0].bytes, fs::file_size(tmp / "first" / "good.pth"));
  EXPECT_EQ(found[1].name, "broken");
  EXPECT_EQ(found[1].network, "-");
  EXPECT_FALSE(found[1].classes.has_value());
  EXPECT_TRUE(contains(found[1].test, "unreadable: " + (tmp / "second" / "broken.pth").string())) << found[1].test;

  const std::string text = seg::model_listing_text(found, folders);
  EXPECT_TRUE(contains(text, "good  fcn  3 classes  ")) << text;
  EXPECT_TRUE(contains(text, "broken  -  -  1 KiB  unreadable: ")) << text;
  const auto j = nlohmann::json::parse(seg::model_listing_json(found));
  EXPECT_EQ(j[0]["classes"], 3);
  EXPECT_TRUE(j[1]["classes"].is_null());
  EXPECT_EQ(j[1]["path"], (tmp / "second" / "broken.pth").string());

  EXPECT_EQ(seg::model_listing_text({}, folders),
            "no models in " + (tmp / "first").string() + ", " + (tmp / "second").string() + " (SEG_MODEL_PATH adds folders)\n");
}
