// Recipes as data: the serialiser, the files in share/recipes, staged recipes, option errors.
#include <seg/error.h>
#include <seg/models.h>
#include <seg/recipe.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Every key of a JSON object, nested ones as "a.b".
std::vector<std::string> flat_keys(const json& j, const std::string& prefix = "") {
  std::vector<std::string> keys;
  for (const auto& [key, value] : j.items()) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (value.is_object()) {
      const auto inner = flat_keys(value, name);
      keys.insert(keys.end(), inner.begin(), inner.end());
    } else {
      keys.push_back(name);
    }
  }
  return keys;
}

// A recipe with every field away from its default.
seg::Recipe unusual_recipe() {
  seg::Recipe r;
  r.description = "every field set";
  r.network = "res-unet";
  r.init = "runs/base";
  r.epochs = 7;
  r.batch = 5;
  r.seed = 1234567890123ULL;
  r.loss = "ce+dice";
  r.optimizer = "adamw";
  r.lr = 2.5e-4;
  r.weight_decay = 3e-5;
  r.schedule = "poly";
  r.class_weights = {"inverse", 0.5};
  r.normalization = "image";
  double strength = 0.01;
  for (const auto& a : seg::augmentations()) r.augmentation.strengths[a.name] = (strength += 0.01);
  r.train_split = "fit";
  r.validation = {"check", 11, 3};
  return r;
}

std::vector<seg::Recipe> stages_of(const std::string& name) {
  const auto text = seg::read_recipe(name);
  return seg::recipe_stages(text.text, text.source);
}

}  // namespace

TEST(RecipeJson, RoundTripsEveryField) {
  const seg::Recipe r = unusual_recipe();
  const std::string text = seg::recipe_to_json(r);
  // The test's recipe leaves no field at its default, so each one has to survive the trip.
  const seg::Recipe plain;
  const auto written = json::parse(text), defaults = json::parse(seg::recipe_to_json(plain));
  const auto keys = flat_keys(written);
  EXPECT_EQ(keys, flat_keys(defaults));
  for (const auto& key : keys) {
    std::string path = key;
    std::replace(path.begin(), path.end(), '.', '/');
    const auto pointer = json::json_pointer("/" + path);
    EXPECT_NE(written.at(pointer), defaults.at(pointer)) << key;
  }
  const seg::Recipe back = seg::recipe_from_json(text, "test");
  EXPECT_EQ(seg::recipe_to_json(back), text);
  EXPECT_EQ(back.seed, r.seed);
  EXPECT_EQ(back.class_weights.mode, "inverse");
  EXPECT_EQ(back.validation.split, "check");
  EXPECT_EQ(back.validation.holdout, 11);
  EXPECT_TRUE(back.augmentation == r.augmentation);
}

TEST(RecipeJson, TrainOptionsRoundTripTheRunSettingsApartFromTheRecipe) {
  seg::TrainOptions o;
  o.recipe = unusual_recipe();
  o.run = {"cuda:1", true, 12.5, "bfloat16", true, true};
  o.overlaps = {{1, 4}, {2, 5}};
  o.recipe_name = "res-unet";
  o.overridden = {"lr", "augmentation.zoom"};
  const std::string text = seg::train_options_to_json(o);
  const auto back = seg::train_options_from_json(text, "checkpoint.pt");
  EXPECT_EQ(seg::train_options_to_json(back), text);
  EXPECT_EQ(back.run.device, "cuda:1");
  EXPECT_TRUE(back.run.cuda_graph);
  EXPECT_EQ(back.run.checkpoint_every_s, 12.5);
  ASSERT_EQ(back.overlaps.size(), 2u);
  EXPECT_EQ(back.overlaps[1].over, 5);
  EXPECT_EQ(back.overridden, o.overridden);
  // The recipe and how the run was carried out are apart: no run setting among the recipe's keys.
  const auto recipe_keys = flat_keys(json::parse(text)["recipe"]);
  for (const auto& run_key : flat_keys(json::parse(text)["run"]))
    EXPECT_EQ(std::count(recipe_keys.begin(), recipe_keys.end(), run_key), 0) << run_key;
}

TEST(RecipeJson, AbsentKeysKeepTheirDefaults) {
  const auto r = seg::recipe_from_json(R"({"network": "fast", "augmentation": {"zoom": 0.5}})", "short.json");
  EXPECT_EQ(r.network, "fast");
  const seg::Recipe plain;
  EXPECT_EQ(r.epochs, plain.epochs);
  EXPECT_EQ(r.augmentation.strength("zoom"), 0.5);
  EXPECT_EQ(r.augmentation.strength("scale"), 0.1);  // the notebook's
  EXPECT_EQ(r.validation.holdout, 24);
}

// Bad recipe files: one named case each.
struct BadRecipe {
  std::string name, text, expected;  // expected: in the message
};
void PrintTo(const BadRecipe& c, std::ostream* os) { *os << c.name; }

class RefusedRecipe : public ::testing::TestWithParam<BadRecipe> {};

TEST_P(RefusedRecipe, NamesTheFileAndTheKey) {
  try {
    seg::recipe_stages(GetParam().text, "bad.json");
    FAIL() << "accepted: " << GetParam().text;
  } catch (const seg::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("bad.json", 0), 0u) << message;
    EXPECT_NE(message.find(GetParam().expected), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Recipe, RefusedRecipe,
    ::testing::Values(BadRecipe{"UnknownKey", R"({"epochs": 3, "lerning_rate": 0.1})", "unknown key \"lerning_rate\""},
                      BadRecipe{"UnknownNestedKey", R"({"validation": {"hold": 3}})", "unknown key \"validation.hold\""},
                      BadRecipe{"UnknownAugmentation", R"({"augmentation": {"flip": 0.5}})", "unknown key \"augmentation.flip\""},
                      BadRecipe{"UnknownKeyInALaterStage", R"({"stages": [{"epochs": 2}, {"epoch": 3}]})", "(stage 2): unknown key \"epoch\""},
                      BadRecipe{"UnknownTopLevelKeyOfStages", R"({"stages": [{}], "name": "x"})", "unknown key \"name\""},
                      BadRecipe{"WrongType", R"({"epochs": "many"})", "malformed"},
                      BadRecipe{"NotAnObject", R"([1, 2])", "JSON object"},
                      BadRecipe{"NotJson", R"({"epochs": )", "not valid JSON"},
                      BadRecipe{"NoStages", R"({"stages": []})", "list of recipes"}),
    [](const ::testing::TestParamInfo<BadRecipe>& info) { return info.param.name; });

TEST(RecipeFiles, EveryOneParsesNamesAKnownNetworkAndKeepsTheTestSplitForScoring) {
  const auto names = seg::recipe_names();
  ASSERT_GE(names.size(), 7u) << seg::recipe_folder();
  const auto networks = seg::network_names();
  for (const auto& name : names) {
    const auto stages = stages_of(name);
    for (size_t k = 0; k < stages.size(); ++k) {
      const auto& r = stages[k];
      EXPECT_NE(std::find(networks.begin(), networks.end(), r.network), networks.end()) << name << ": " << r.network;
      EXPECT_NO_THROW(seg::check_recipe(r)) << name << " stage " << k + 1;
      EXPECT_FALSE(r.description.empty() && k == 0) << name << " says what it is";
      // The notebook's recipes validate on the test split as the notebook does; every other
      // one on cases held out of the train split.
      if (name.rfind("notebook-", 0) == 0) {
        EXPECT_EQ(r.validation.split, "test") << name;
      } else {
        EXPECT_EQ(r.validation.split, "") << name;
        EXPECT_EQ(r.validation.holdout, 24) << name;
      }
    }
  }
  EXPECT_EQ(stages_of("notebook-light-unet").front().network, "light-unet");
  EXPECT_EQ(stages_of("fast").front().lr, 4e-3);
}

// The README's chains ("The shipped models"), stage by stage.
TEST(RecipeFiles, TheShippedModelsChainsAreTheReadmesCommands) {
  struct Stage {
    int64_t epochs;
    double lr;
    std::string weights;
    std::map<std::string, double> augmentation;  // the ones that are on
  };
  const std::map<std::string, double> res_base{{"scale", 0.1}, {"intensity", 0.2}, {"zoom", 0.5}};
  auto with = [](std::map<std::string, double> base, const std::map<std::string, double>& more) {
    for (const auto& [k, v] : more) base[k] = v;
    return base;
  };
  const auto late = with(res_base, {{"processing", 1}, {"zoom", 1}, {"opacity", 1}});
  const std::vector<Stage> res_unet{{100, 3e-3, "power", res_base},
                                    {24, 5e-4, "none", res_base},
                                    {24, 5e-4, "none", with(res_base, {{"processing", 1}})},
                                    {24, 5e-4, "none", late},
                                    {24, 5e-4, "none", with(late, {{"devices", 0.5}})},
                                    {24, 5e-4, "none", with(late, {{"devices", 0.5}})}};
  const auto fast_late = with(res_base, {{"zoom", 1}, {"opacity", 1}, {"texture", 0.3}});
  const std::vector<Stage> fast{{60, 4e-3, "power", res_base},
                                {40, 1e-3, "power", fast_late},
                                {40, 1e-3, "power", with(fast_late, {{"devices", 0.5}})},
                                {40, 1e-3, "power", with(fast_late, {{"devices", 0.5}})}};
  for (const auto& [name, expected] : std::vector<std::pair<std::string, std::vector<Stage>>>{{"jsrt-res-unet", res_unet}, {"jsrt-fast", fast}}) {
    const auto stages = stages_of(name);
    ASSERT_EQ(stages.size(), expected.size()) << name;
    for (size_t k = 0; k < stages.size(); ++k) {
      const auto& r = stages[k];
      EXPECT_EQ(r.epochs, expected[k].epochs) << name << " stage " << k + 1;
      EXPECT_DOUBLE_EQ(r.lr, expected[k].lr) << name << " stage " << k + 1;
      EXPECT_EQ(r.class_weights.mode, expected[k].weights) << name << " stage " << k + 1;
      EXPECT_EQ(r.normalization, "image") << name << " stage " << k + 1;
      EXPECT_EQ(r.network, name == "jsrt-fast" ? "fast" : "res-unet");
      for (const auto& a : seg::augmentations()) {
        const auto it = expected[k].augmentation.find(a.name);
        EXPECT_EQ(r.augmentation.strength(a.name), it == expected[k].augmentation.end() ? 0.0 : it->second)
            << name << " stage " << k + 1 << ": " << a.name;
      }
    }
    EXPECT_EQ(stages.front().validation.every, stages.front().epochs == 100 ? 25 : 60) << name;
  }
}

TEST(RecipeStages, LaterStagesChangeOnlyWhatTheyNameAndOptionsReachEveryStage) {
  const std::string text = R"({"description": "two", "stages": [{"network": "fast", "lr": 0.004, "augmentation": {"zoom": 0.5}},
                                                                  {"lr": 0.001, "augmentation": {"opacity": 1}}]})";
  const auto stages = seg::recipe_stages(text, "two.json", R"({"epochs": 1, "augmentation": {"scale": 0}})");
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[1].network, "fast");
  EXPECT_EQ(stages[1].lr, 0.001);
  EXPECT_EQ(stages[1].augmentation.strength("zoom"), 0.5);    // kept from stage 1
  EXPECT_EQ(stages[1].augmentation.strength("opacity"), 1.0);
  for (const auto& s : stages) {
    EXPECT_EQ(s.epochs, 1);
    EXPECT_EQ(s.augmentation.strength("scale"), 0.0);
  }
  EXPECT_EQ(stages[0].description, "two");
  // Written out, every stage is whole and reads back the same.
  const auto again = seg::recipe_stages(seg::stages_to_json(stages), "record");
  ASSERT_EQ(again.size(), 2u);
  for (size_t k = 0; k < 2; ++k) EXPECT_EQ(seg::recipe_to_json(again[k]), seg::recipe_to_json(stages[k]));
}

TEST(RecipeChecks, ValuesOutOfRangeNameTheirKeysAsTheCallerNamesThem) {
  const seg::Recipe plain;
  seg::Recipe r = plain;
  EXPECT_NO_THROW(seg::check_recipe(r));
  r.epochs = 0;
  try {
    seg::check_recipe(r);
    FAIL();
  } catch (const seg::InvalidOption& e) {
    EXPECT_EQ(std::string(e.what()), "epochs must be at least 1");
    EXPECT_EQ(e.keys(), std::vector<std::string>{"epochs"});
    EXPECT_EQ(e.message([](const std::string& key) { return "--" + key; }), "--epochs must be at least 1");
  }
  r = plain;
  r.augmentation.strengths["rotation"] = 200;
  EXPECT_THROW(seg::check_recipe(r), seg::InvalidOption);
  r = plain;
  r.network = "resnet-9000";
  EXPECT_THROW(seg::check_recipe(r), seg::InvalidOption);
  r = plain;
  r.validation.split = "train";  // validation cases are never trained on
  EXPECT_THROW(seg::check_recipe(r), seg::InvalidOption);
  seg::RunSettings run;
  run.cuda_graph = true;
  r = plain;
  EXPECT_NO_THROW(seg::check_run_settings(run, r, false));
  EXPECT_THROW(seg::check_run_settings(run, r, true), seg::InvalidOption);
  r.augmentation.strengths["zoom"] = 0.5;
  try {
    seg::check_run_settings(run, r, false);
    FAIL();
  } catch (const seg::InvalidOption& e) {
    EXPECT_NE(std::string(e.what()).find("set augmentation.zoom to 0"), std::string::npos) << e.what();
  }
}

// Checkpoints of runs begun before recipes hold one flat object of options: they still resume.
TEST(RecipeJson, ReadsTheFlatOptionsOfOlderCheckpoints) {
  const std::string flat = R"({"architecture": "fast", "epochs": 14, "batch": 3, "lr": 0.004, "seed": 42,
    "weight_mode": "none", "weight_power": 0.35, "augment_scale": 0.05, "augment_zoom": 0.5, "val_every": 14,
    "checkpoint_every_s": 30.0, "train_split": "train", "val_split": "test", "normalization": "dataset", "device": "cpu",
    "deterministic": false, "loss": "ce+dice", "optimizer": "adamw", "weight_decay": 0.0001, "schedule": "onecycle",
    "init_from": "", "precision": "float32", "channels_last": false, "cuda_graph": false, "overlaps": [[1, 4]]})";
  const auto o = seg::train_options_from_json(flat, "checkpoint.pt");
  EXPECT_EQ(o.recipe.network, "fast");
  EXPECT_EQ(o.recipe.class_weights.mode, "none");
  EXPECT_EQ(o.recipe.augmentation.strength("zoom"), 0.5);
  EXPECT_EQ(o.recipe.validation.split, "test");
  EXPECT_EQ(o.recipe.validation.every, 14);
  EXPECT_EQ(o.run.device, "cpu");
  ASSERT_EQ(o.overlaps.size(), 1u);
}

TEST(RecipeLookup, NamesRunFoldersAndFiles) {
  EXPECT_TRUE(seg::is_recipe_name("fast"));
  EXPECT_FALSE(seg::is_recipe_name("fcn"));  // a network, not a recipe
  const auto named = seg::read_recipe("res-unet");
  EXPECT_EQ(fs::path(named.source), seg::recipe_folder() / "res-unet.json");
  EXPECT_EQ(seg::read_recipe(named.source).text, named.text);
  try {
    seg::read_recipe("no-such-recipe");
    FAIL();
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("notebook-fcn"), std::string::npos) << e.what();  // what there is
  }
}
