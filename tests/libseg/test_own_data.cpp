// Data sets that are not JSRT: dataset.json's unknown keys, packs of 16-bit images, and the
// intensity range a model records so that seg-segment can warn about films on another scale.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/intensity_range.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>


#include "fixtures.h"
#include "shapes_dataset.h"
#include "test_support.h"

using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::ScratchDir;

namespace {

const char* kValidRest = R"("images": "images/{case}.png", "classes": {"background": 0}, "split": {"train": ["a"]})";

// A dataset.json of `extra` (a key and its value) before the valid keys.
seg::DatasetSpec spec_with(const ScratchDir& tmp, const std::string& extra) {
  seg::write_file_atomically(tmp / "dataset.json", "{" + extra + ", " + kValidRest + "}");
  return seg::DatasetSpec::read(tmp / "dataset.json");
}

}  // namespace

// ---- dataset.json: unknown keys ------------------------------------------------------------

struct MisspeltKey {
  std::string name, key, meant;
};
void PrintTo(const MisspeltKey& c, std::ostream* os) { *os << c.name; }

class DatasetSpecMisspeltKey : public ::testing::TestWithParam<MisspeltKey> {};

TEST_P(DatasetSpecMisspeltKey, IsAWarningThatSuggestsTheKeyMeant) {
  ScratchDir tmp;
  const auto spec = spec_with(tmp, "\"" + GetParam().key + "\": \"x\"");
  ASSERT_EQ(spec.warnings.size(), 1u);
  EXPECT_EQ(spec.warnings[0], "unknown key \"" + GetParam().key + "\" (did you mean \"" + GetParam().meant + "\"?)");
}

INSTANTIATE_TEST_SUITE_P(
    Keys, DatasetSpecMisspeltKey,
    ::testing::Values(MisspeltKey{"plural", "splits", "split"}, MisspeltKey{"singular", "image", "images"},
                      MisspeltKey{"capital", "Classes", "classes"}, MisspeltKey{"letter_dropped", "descripton", "description"},
                      MisspeltKey{"letters_swapped", "szie", "size"}, MisspeltKey{"letter_wrong", "lables", "labels"}),
    [](const auto& info) { return info.param.name; });

TEST(DatasetSpec, AKeyLikeNoneIsNamedWithTheKeysThereAre) {
  ScratchDir tmp;
  const auto spec = spec_with(tmp, R"("license": "CC-BY")");
  ASSERT_EQ(spec.warnings.size(), 1u);
  EXPECT_TRUE(contains(spec.warnings[0], "unknown key \"license\"")) << spec.warnings[0];
  EXPECT_FALSE(contains(spec.warnings[0], "did you mean")) << spec.warnings[0];
  EXPECT_TRUE(contains(spec.warnings[0], "split")) << spec.warnings[0];
  EXPECT_TRUE(spec_with(tmp, R"("description": "mine")").warnings.empty());
}

TEST(DatasetSpec, AMisspeltSplitIsNamedInTheErrorItCauses) {
  ScratchDir tmp;
  seg::write_file_atomically(tmp / "dataset.json",
                             R"({"images": "images/{case}.png", "classes": {"background": 0}, "splits": {"train": ["a"]}})");
  const auto message = error_of([&] { seg::DatasetSpec::read(tmp / "dataset.json"); });
  EXPECT_TRUE(contains(message, "lists no cases")) << message;
  EXPECT_TRUE(contains(message, "unknown key \"splits\" (did you mean \"split\"?)")) << message;
}

// ---- tensor packs of other pixel types ------------------------------------------------------

TEST(TensorPack, KeepsSixteenBitImagesTheirDescriptionAndGeometry) {
  ScratchDir tmp;
  auto d = seg::testing::shapes_dataset(3, 12, 10, 2);
  d.description = "three shapes";
  d.geometry.resize(3);
  d.geometry[1].has_spacing = true;
  d.geometry[1].spacing = {0.5, 0.25};
  d.geometry[1].origin = {3, -4};
  seg::save_tensor_pack(d, tmp / "p.pth");
  const auto back = seg::load_tensor_pack(tmp / "p.pth");
  EXPECT_EQ(back.images.scalar_type(), torch::kInt);
  EXPECT_TRUE(torch::equal(back.images, d.images));
  EXPECT_EQ(seg::stored_pixel_type(back.images), "uint16");
  EXPECT_EQ(back.description, "three shapes");
  ASSERT_EQ(back.geometry.size(), 3u);
  EXPECT_FALSE(back.geometry[0].has_spacing);
  EXPECT_TRUE(back.geometry[1].has_spacing);
  EXPECT_EQ(back.geometry[1].spacing, (std::array<double, 2>{0.5, 0.25}));
  EXPECT_EQ(back.geometry[1].origin, (std::array<double, 2>{3, -4}));
  // A subset keeps each case's own geometry.
  EXPECT_EQ(back.subset("test").geometry.at(0).has_spacing, false);
  EXPECT_TRUE(back.subset("train").geometry.at(1).has_spacing);
}

TEST(TensorPack, PixelTypesByWhatTheImagesHold) {
  EXPECT_EQ(seg::stored_pixel_type(torch::zeros({1, 2, 2}, torch::kByte)), "uint8");
  EXPECT_EQ(seg::stored_pixel_type(torch::full({1, 2, 2}, -5, torch::kShort)), "int16");
  EXPECT_EQ(seg::stored_pixel_type(torch::full({1, 2, 2}, 65535, torch::kInt)), "uint16");
  EXPECT_EQ(seg::stored_pixel_type(torch::full({1, 2, 2}, -1, torch::kInt)), "int32");
  EXPECT_EQ(seg::stored_pixel_type(torch::full({1, 2, 2}, 65536, torch::kInt)), "int32");
  EXPECT_EQ(seg::stored_pixel_type(torch::zeros({1, 2, 2}, torch::kFloat)), "float32");
  auto d = seg::testing::shapes_dataset(2, 6, 6, 1, 100, torch::kLong);
  const auto message = error_of([&] { d.validate(); });
  EXPECT_TRUE(contains(message, "a data set holds uint8, int16, int32 (uint16 widened) or float32 images")) << message;
}

TEST(TensorPack, MixedTypesWarningCountsTheCasesOfEach) {
  EXPECT_EQ(seg::pixel_type_mix_warning({{"uint8", 30}}), "");
  const auto warning = seg::pixel_type_mix_warning({{"uint8", 30}, {"uint16", 1}});
  EXPECT_TRUE(contains(warning, "pixel types differ: uint16 (1 case), uint8 (30 cases)")) << warning;
  EXPECT_TRUE(contains(warning, "--normalize image")) << warning;
}

// ---- the intensities a model was trained on -------------------------------------------------

TEST(IntensityRange, IsTheHalfPercentAndNinetyNineAndAHalfPercentPixel) {
  // 0..999 once each: the 0.5th percentile by nearest rank is the 5th smallest (4), the
  // 99.5th the 995th (994).
  const auto range = seg::training_intensity_range(torch::arange(1000, torch::kInt).view({10, 10, 10}));
  EXPECT_EQ(range.low, 4);
  EXPECT_EQ(range.high, 994);
  // A set larger than the sample still lands within a stride of the true percentiles.
  const auto big = seg::training_intensity_range(torch::arange(4000000, torch::kFloat).view({4, 1000, 1000}));
  EXPECT_NEAR(big.low, 0.005 * 4000000, 8);
  EXPECT_NEAR(big.high, 0.995 * 4000000, 8);
}

struct FilmCase {
  std::string name;
  double trained_low, trained_high;
  int64_t film_peak;
  bool far;
};
void PrintTo(const FilmCase& c, std::ostream* os) { *os << c.name; }

class IntensityMismatch : public ::testing::TestWithParam<FilmCase> {};

TEST_P(IntensityMismatch, WarnsOnlyForFilmsFarOutsideTheTrainingRange) {
  const auto& c = GetParam();
  // A film of 64 x 64: dark background, a bright quarter up to its peak.
  auto film = torch::full({64, 64}, c.film_peak / 10, torch::kInt);
  film.slice(0, 0, 32).slice(1, 0, 32).fill_(c.film_peak);
  const auto warning = seg::intensity_mismatch(film, "chest.png", {c.trained_low, c.trained_high});
  EXPECT_EQ(!warning.empty(), c.far) << warning;
  if (c.far) {
    EXPECT_TRUE(contains(warning, "chest.png's intensities (" + std::to_string(c.film_peak / 10) + ".." +
                                      std::to_string(c.film_peak) + ") lie far outside"))
        << warning;
    EXPECT_TRUE(contains(warning, "per-image normalisation")) << warning;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Films, IntensityMismatch,
    ::testing::Values(FilmCase{"eight_bit_film_sixteen_bit_model", 400, 4095, 255, true},
                      FilmCase{"sixteen_bit_film_sixteen_bit_model", 400, 4095, 4095, false},
                      FilmCase{"darker_sixteen_bit_film", 400, 4095, 2000, false},
                      FilmCase{"sixteen_bit_film_eight_bit_model", 10, 250, 4095, true},
                      FilmCase{"eight_bit_film_eight_bit_model", 10, 250, 200, false},
                      FilmCase{"just_below_a_quarter", 0, 4000, 990, true},
                      FilmCase{"just_above_a_quarter", 0, 4000, 1010, false},
                      FilmCase{"just_below_four_times", 0, 250, 990, false},
                      FilmCase{"just_above_four_times", 0, 250, 1010, true}),
    [](const auto& info) { return info.param.name; });

TEST(IntensityRange, ACheckWarnsOnlyForDataSetNormalisationWithARecordedRange) {
  std::vector<seg::Model> models(1);
  models[0].info.normalization.mode = "dataset";
  models[0].info.training_intensity = seg::IntensityRange{0, 4095};
  const auto eight_bit = torch::full({16, 16}, 200, torch::kByte);
  const seg::TrainingIntensityCheck check(models);
  EXPECT_TRUE(check.film(torch::full({16, 16}, 3000, torch::kInt), "wide.png").empty());
  EXPECT_TRUE(contains(check.film(eight_bit, "a.png"), "a.png's intensities"));
  EXPECT_TRUE(contains(check.film(eight_bit, "b.png"), "b.png's intensities"));  // every film; the tool prints one
  models[0].info.normalization.mode = "image";
  EXPECT_TRUE(seg::TrainingIntensityCheck(models).film(eight_bit, "a.png").empty());
  models[0].info.normalization.mode = "dataset";
  models[0].info.training_intensity.reset();  // an older model records none
  EXPECT_TRUE(seg::TrainingIntensityCheck(models).film(eight_bit, "a.png").empty());
}

TEST(ModelInfo, TrainingIntensityIsKeptAndOptional) {
  seg::ModelInfo info;
  info.network = {"fcn", 1, 2};
  info.classes = seg::ClassTable::numbered(2);
  info.input_size = {16, 16};
  EXPECT_FALSE(seg::model_info_from_json(seg::model_info_to_json(info), "m").training_intensity.has_value());
  info.training_intensity = seg::IntensityRange{12, 4000};
  const auto text = seg::model_info_to_json(info);
  EXPECT_EQ(nlohmann::json::parse(text)["training_intensity"], (nlohmann::json{{"low", 12.0}, {"high", 4000.0}}));
  const auto back = seg::model_info_from_json(text, "m");
  ASSERT_TRUE(back.training_intensity.has_value());
  EXPECT_EQ(back.training_intensity->low, 12);
  EXPECT_EQ(back.training_intensity->high, 4000);
  auto reversed = nlohmann::json::parse(text);
  reversed["training_intensity"] = {{"low", 5000.0}, {"high", 4000.0}};
  EXPECT_TRUE(contains(error_of([&] { seg::model_info_from_json(reversed.dump(), "m.pth"); }), "training_intensity"));
}
