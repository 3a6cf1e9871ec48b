// seg-segment's inference options on real JSRT cases: ensembles, test-time augmentation,
// non-square images (pad vs stretch), largest-component post-processing.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/postprocess.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <optional>

#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

namespace {

// Two short fcn runs (seeds 1 and 2) on 12 real training cases, in `root`; what seg-train
// printed for seed 1 in root/train-output.txt. Empty, or the first error.
std::string train_two_runs(const fs::path& real, const fs::path& root) {
  const auto data = root / "data";
  fs::create_directories(data);
  fs::create_directory_symlink(real / "images", data / "images");
  fs::create_directory_symlink(real / "labels", data / "labels");
  nlohmann::json j = nlohmann::json::parse(seg::read_file(real / "dataset.json"));
  auto train = j["split"]["train"].get<std::vector<std::string>>();
  auto test = j["split"]["test"].get<std::vector<std::string>>();
  j["split"]["train"] = std::vector<std::string>(train.begin(), train.begin() + 12);
  j["split"]["test"] = std::vector<std::string>(test.begin(), test.begin() + 2);
  seg::write_file_atomically(data / "dataset.json", j.dump());
  for (const char* seed : {"1", "2"}) {
    const auto out = (root / (std::string("run") + seed)).string();
    auto r = run_tool_in_process(seg::tools::train, {"--data", data.string(), "--model", "fcn", "--epochs", "24",
                                                     "--val-every", "24", "--lr", "0.003", "--seed", seed,
                                                     "--threads", "1", "--out", out});
    if (r.code != 0) return r.err;
    if (std::string(seed) == "1") seg::write_file_atomically(root / "train-output.txt", r.out);
  }
  return "";
}

// Where ctest's SegmentOptionsFixture test leaves the runs for every SegmentOptions test
// (tests/CMakeLists.txt), or nothing outside ctest.
std::optional<fs::path> shared_runs() {
  const char* dir = std::getenv("SEG_FIXTURE_DIR");
  if (dir == nullptr || *dir == '\0') return std::nullopt;
  return fs::path(dir) / "segment-options";
}

// The runs: the ones this ctest run made once, else made here for this process.
class SegmentOptions : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(1);
    auto real = seg::testing::jsrt_dir();
    if (!real) return;
    real_ = *real;
    if (const auto shared = shared_runs(); shared && fs::exists(*shared / "done")) {
      root_ = *shared;
    } else {
      scratch_ = std::make_unique<ScratchDir>("segopts");
      root_ = scratch_->path();
      setup_error_ = train_two_runs(real_, root_);
    }
    if (setup_error_.empty()) train_output_ = seg::read_file(root_ / "train-output.txt");
  }
  static void TearDownTestSuite() { scratch_.reset(); }

  void SetUp() override {
    if (root_.empty()) GTEST_SKIP() << "JSRT data not found (set SEG_DATA_DIR): skipped";
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    torch::set_num_threads(1);
  }

  static fs::path data() { return root_ / "data"; }
  static std::string run(int seed) { return (root_ / ("run" + std::to_string(seed))).string(); }

  static fs::path real_;
  static fs::path root_;
  static std::unique_ptr<ScratchDir> scratch_;
  static std::string setup_error_;
  static std::string train_output_;  // what seg-train printed for seed 1
};

fs::path SegmentOptions::real_;
fs::path SegmentOptions::root_;
std::unique_ptr<ScratchDir> SegmentOptions::scratch_;
std::string SegmentOptions::setup_error_;
std::string SegmentOptions::train_output_;

at::Tensor probability(const fs::path& dir, const std::string& c, const std::string& name) {
  return seg::io::read_image(dir / "probabilities" / (c + "_" + name + ".nii.gz")).pixels.to(torch::kFloat);
}

const std::vector<std::string> kClasses{"background", "right_lung", "left_lung", "heart", "right_clavicle",
                                        "left_clavicle"};

}  // namespace

// Run by ctest before every SegmentOptions test (FIXTURES_SETUP): the runs they share.
TEST(SegmentOptionsFixture, TrainsTheRunsTheSuiteShares) {
  SEG_REQUIRE_JSRT(real);
  const auto shared = shared_runs();
  if (!shared) GTEST_SKIP() << "SEG_FIXTURE_DIR not set (ctest sets it): each process trains its own runs";
  fs::remove_all(*shared);
  const std::string error = train_two_runs(*real_opt, *shared);
  ASSERT_TRUE(error.empty()) << error;
  seg::write_file_atomically(*shared / "done", "trained\n");
}

TEST_F(SegmentOptions, EnsembleOfTwoRunsWritesValidMapsAndProbabilities) {
  ScratchDir out;
  auto r = run_tool_in_process(seg::tools::segment, {"--model", run(1), "--model", run(2), "--data", data().string(),
                                                     "-o", out.path().string(), "--probabilities", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string c = "JPCNN007";
  auto labels = seg::io::read_label_map(out / (c + ".png")).pixels;
  EXPECT_EQ(labels.sizes(), (std::vector<int64_t>{256, 256}));
  EXPECT_LE(labels.max().item<int>(), 5);
  auto sum = torch::zeros({256, 256});
  for (const auto& name : kClasses) sum += probability(out.path(), c, name);
  EXPECT_LT((sum - 1).abs().max().item<double>(), 1e-4);
  // The lungs are found by the pair as by each alone.
  EXPECT_GT((labels == 1).sum().item<int64_t>(), 2000);
  EXPECT_GT((labels == 2).sum().item<int64_t>(), 2000);

  // An ensemble member with another class table is refused, naming the file.
  auto bad = run_tool_in_process(seg::tools::segment, {"--model", run(1), "--model", (out / "nope.pth").string(),
                                                       (real_ / "images/JPCNN007.png").string(), "-o",
                                                       (out / "x").string()});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("nope.pth"), std::string::npos) << bad.err;
}

TEST_F(SegmentOptions, ModelOptionTakesOneValueSoInputsMayFollowIt) {
  ScratchDir out;
  auto r = run_tool_in_process(seg::tools::segment, {"--model", run(1), (real_ / "images/JPCNN008.png").string(),
                                                     "-o", out.path().string(), "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out / "JPCNN008.png"));
}

TEST_F(SegmentOptions, TestTimeAugmentationChangesProbabilitiesNotShapes) {
  ScratchDir out;
  const auto image = (real_ / "images/JPCNN008.png").string();
  auto plain = run_tool_in_process(seg::tools::segment, {"--model", run(1), image, "-o", (out / "plain").string(),
                                                         "--probabilities", "--threads", "1"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  auto tta = run_tool_in_process(seg::tools::segment, {"--model", run(1), image, "-o", (out / "tta").string(),
                                                       "--probabilities", "--tta", "--threads", "1"});
  ASSERT_EQ(tta.code, 0) << tta.err;
  EXPECT_EQ(seg::testing::list_files(out / "plain"), seg::testing::list_files(out / "tta"));
  auto a = probability(out / "plain", "JPCNN008", "right_lung");
  auto b = probability(out / "tta", "JPCNN008", "right_lung");
  ASSERT_EQ(a.sizes(), b.sizes());
  const double change = (a - b).abs().max().item<double>();
  EXPECT_GT(change, 1e-3);
  auto la = seg::io::read_label_map(out / "plain/JPCNN008.png").pixels;
  auto lb = seg::io::read_label_map(out / "tta/JPCNN008.png").pixels;
  EXPECT_GT((la == lb).to(torch::kFloat).mean().item<double>(), 0.9);  // a nudge, not another answer
}

TEST_F(SegmentOptions, NonSquareImageGetsALabelMapOfItsOwnSize) {
  ScratchDir out;
  // A narrower field of view: the middle 256 x 180 of a radiograph.
  auto image = seg::io::read_image(real_ / "images/JPCNN008.png");
  using torch::indexing::Slice;
  image.pixels = image.pixels.index({Slice(), Slice(38, 218)}).contiguous();
  seg::io::write_image(out / "narrow.png", image);
  for (const char* mode : {"pad", "stretch"}) {
    auto r = run_tool_in_process(seg::tools::segment, {"--model", run(1), (out / "narrow.png").string(), "-o",
                                                       (out / mode).string(), "--resize", mode, "--threads", "1"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto labels = seg::io::read_label_map(out / mode / "narrow.png").pixels;
    EXPECT_EQ(labels.sizes(), (std::vector<int64_t>{256, 180})) << mode;
    EXPECT_GT((labels == 1).sum().item<int64_t>(), 1000) << mode;
  }
  auto pad = seg::io::read_label_map(out / "pad/narrow.png").pixels;
  auto stretch = seg::io::read_label_map(out / "stretch/narrow.png").pixels;
  EXPECT_FALSE(torch::equal(pad, stretch));
  auto bad = run_tool_in_process(seg::tools::segment, {"--model", run(1), (out / "narrow.png").string(), "-o",
                                                       (out / "x").string(), "--resize", "crop"});
  EXPECT_EQ(bad.code, 2);
}

TEST_F(SegmentOptions, LargestComponentRemovesAPlantedSpeck) {
  ScratchDir out;
  // Plant a 40 x 40 piece from the middle of the right lung into the bright abdomen, below the
  // heart and between the lungs.
  auto image = seg::io::read_image(real_ / "images/JPCNN008.png");
  auto truth = seg::io::read_label_map(real_ / "labels/JPCNN008.png").pixels;
  auto lung = (truth == 1).nonzero().to(torch::kFloat).mean(0);
  const auto cy = static_cast<int64_t>(lung[0].item<float>()), cx = static_cast<int64_t>(lung[1].item<float>());
  using torch::indexing::Slice;
  const int64_t half = 20, ty = 226, tx = 128;
  image.pixels.index_put_({Slice(ty - half, ty + half), Slice(tx - half, tx + half)},
                          image.pixels.index({Slice(cy - half, cy + half), Slice(cx - half, cx + half)}).clone());
  seg::io::write_image(out / "speck.png", image);
  auto plain = run_tool_in_process(seg::tools::segment, {"--model", run(1), (out / "speck.png").string(), "-o",
                                                         (out / "plain").string(), "--no-postprocessing"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(plain.out.find("no post-processing"), std::string::npos) << plain.out;
  auto lcc = run_tool_in_process(seg::tools::segment,
                                 {"--model", run(1), (out / "speck.png").string(), "-o", (out / "lcc").string(),
                                  "--no-postprocessing", "--largest-component", "--fill-holes"});
  ASSERT_EQ(lcc.code, 0) << lcc.err;
  auto before = seg::io::read_label_map(out / "plain/speck.png").pixels;
  auto after = seg::io::read_label_map(out / "lcc/speck.png").pixels;
  auto patch = [&](const at::Tensor& t) {
    return t.index({Slice(ty - half / 2, ty + half / 2), Slice(tx - half / 2, tx + half / 2)});
  };
  ASSERT_GT((patch(before) == 1).sum().item<int64_t>(), 0) << "the planted speck was not taken for lung";
  EXPECT_EQ((patch(after) == 1).sum().item<int64_t>(), 0);
  // One piece per structure, and the main lung is untouched.
  EXPECT_TRUE(torch::equal(seg::keep_largest_component(after, seg::ClassTable::numbered(6)), after));
  EXPECT_EQ(after[cy][cx].item<int>(), 1);
}

// seg-train scores the clean-ups on the validation split after the last epoch and keeps the
// best (fewer steps on a tie); seg-segment runs the model's choice unless told not to.
TEST_F(SegmentOptions, ModelCarriesTheCleanUpItsValidationChose) {
  const auto trained = seg::load_model(run(1));
  const auto provenance = nlohmann::json::parse(trained.info.provenance_json);
  ASSERT_TRUE(provenance.contains("postprocessing_val_mean_dice")) << provenance.dump();
  const auto& scores = provenance["postprocessing_val_mean_dice"];
  ASSERT_EQ(scores.size(), 4u) << scores.dump();
  EXPECT_NEAR(scores["none"].get<double>(), provenance["val_mean_dice"].get<double>(), 1e-5);
  const std::string chosen = seg::postprocessing_candidate_name(trained.info.postprocessing);
  ASSERT_TRUE(scores.contains(chosen)) << chosen;
  // seg-train printed every score, in the candidates' order (fewest steps first).
  size_t position = train_output_.find("post-processing on the validation cases");
  ASSERT_NE(position, std::string::npos) << train_output_;
  // And the reframing decision after it, with what it was decided on.
  EXPECT_NE(train_output_.find("reframing on the validation cases (mean Dice): one pass ", position), std::string::npos)
      << train_output_;
  for (const auto& candidate : seg::postprocessing_candidates()) {
    position = train_output_.find(" " + seg::postprocessing_candidate_name(candidate) + " ", position);
    EXPECT_NE(position, std::string::npos) << seg::postprocessing_candidate_name(candidate) << " missing or out of order";
  }
  const auto steps = [](const std::string& name) { return name == "none" ? 0 : 1 + std::count(name.begin(), name.end(), '+'); };
  for (const auto& [name, dice] : scores.items()) {
    EXPECT_LE(dice.get<double>(), scores[chosen].get<double>()) << name << " beats the chosen " << chosen;
    if (dice.get<double>() == scores[chosen].get<double>()) {
      EXPECT_GE(steps(name), steps(chosen)) << name;
    }
  }

  // A model that recommends both steps: by default its output is the explicit clean-up's, and
  // --no-postprocessing gives the plain argmax.
  ScratchDir out;
  auto model = seg::load_model(run(1));
  model.info.postprocessing = {"largest-component", "fill-holes"};
  seg::save_model(model, out / "cleaning.pth");
  model.info.postprocessing = {};
  seg::save_model(model, out / "plain.pth");
  const auto image = (real_ / "images/JPCNN008.png").string();
  const auto segment = [&](const std::string& model_file, const std::string& dir, std::vector<std::string> extra) {
    std::vector<std::string> args{"--model", (out / model_file).string(), image, "-o", (out / dir).string(), "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_tool_in_process(seg::tools::segment, args);
    EXPECT_EQ(r.code, 0) << r.err;
    return std::make_pair(r.out, seg::io::read_label_map(out / dir / "JPCNN008.png").pixels);
  };
  const auto [default_out, by_default] = segment("cleaning.pth", "default", {});
  EXPECT_NE(default_out.find("post-processing: largest-component, fill-holes"), std::string::npos) << default_out;
  const auto explicit_steps = segment("plain.pth", "explicit", {"--largest-component", "--fill-holes"}).second;
  const auto raw = segment("plain.pth", "raw", {}).second;
  const auto skipped = segment("cleaning.pth", "skipped", {"--no-postprocessing"}).second;
  EXPECT_TRUE(torch::equal(by_default, explicit_steps));
  EXPECT_TRUE(torch::equal(skipped, raw));
  EXPECT_FALSE(torch::equal(raw, explicit_steps)) << "this model's raw output needs no clean-up; pick another case";
  // An ensemble runs only the steps every member recommends.
  const auto mixed = run_tool_in_process(seg::tools::segment, {"--model", (out / "cleaning.pth").string(), "--model",
                                                               (out / "plain.pth").string(), image, "-o",
                                                               (out / "mixed").string(), "--threads", "1"});
  ASSERT_EQ(mixed.code, 0) << mixed.err;
  EXPECT_NE(mixed.out.find("no post-processing"), std::string::npos) << mixed.out;
}

// --whole paints the lungs over the clavicles where the model records that its labels drew
// them so: the label map is the plain one with restore_covered applied, and the lungs gain the
// apex behind the clavicle. --masks writes each structure whole, the lungs and the clavicles
// overlapping. A model that records nothing is refused by --whole before anything is written.
TEST_F(SegmentOptions, WholeAndMasksGiveTheLungsBackTheirApexBehindTheClavicles) {
  ScratchDir out;
  const auto image = (real_ / "images/JPCNN008.png").string();
  const auto segment = [&](const std::string& model, const std::string& dir, std::vector<std::string> extra) {
    std::vector<std::string> args{"--model", model, image, "-o", (out / dir).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_tool_in_process(seg::tools::segment, args);
  };
  const auto refused = segment(run(1), "refused", {"--whole"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("--overlap"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(out / "refused"));

  const auto model = (out / "model.pth").string();
  auto convert = run_tool_in_process(seg::tools::convert, {run(1), "-o", model, "--overlap", "right_lung:right_clavicle",
                                                           "--overlap", "2:5"});
  ASSERT_EQ(convert.code, 0) << convert.err;
  const auto overlaps = seg::load_model(model).info.overlaps;
  const auto plain = segment(model, "plain", {});
  ASSERT_EQ(plain.code, 0) << plain.err;
  const auto whole = segment(model, "whole", {"--whole", "--masks"});
  ASSERT_EQ(whole.code, 0) << whole.err;
  EXPECT_NE(whole.out.find("structures whole"), std::string::npos) << whole.out;
  const auto before = seg::io::read_label_map(out / "plain/JPCNN008.png").pixels;
  const auto after = seg::io::read_label_map(out / "whole/JPCNN008.png").pixels;
  EXPECT_TRUE(torch::equal(after, seg::restore_covered(before, overlaps)));
  const auto gained = (after != before);
  ASSERT_GT(gained.sum().item<int64_t>(), 20) << "no clavicle pixel became lung";
  EXPECT_TRUE(((before.masked_select(gained) == 4) | (before.masked_select(gained) == 5)).all().item<bool>());
  EXPECT_TRUE(((after.masked_select(gained) == 1) | (after.masked_select(gained) == 2)).all().item<bool>());

  // The masks: the lungs as --whole draws them, the others as predicted, so lung and clavicle
  // overlap where the clavicle was given back; PNG 0/255, NIfTI 0/1.
  auto mask = [&](const std::string& dir, const std::string& name, const std::string& ext) {
    return seg::io::read_label_map(out / dir / "masks" / ("JPCNN008_" + name + ext)).pixels;
  };
  for (int value = 1; value <= 5; ++value) {
    const auto& name = kClasses[static_cast<size_t>(value)];
    const auto expected = ((value <= 2 ? after : before) == value).to(torch::kByte) * 255;
    EXPECT_TRUE(torch::equal(mask("whole", name, ".png"), expected)) << name;
  }
  const auto both = [&](const char* lung, const char* clavicle) {
    return (mask("whole", lung, ".png") & mask("whole", clavicle, ".png")).gt(0).sum().item<int64_t>();
  };
  EXPECT_GT(both("right_lung", "right_clavicle") + both("left_lung", "left_clavicle"), 0);
  const auto nii = segment(model, "nii", {"--masks", "--format", "nii.gz"});
  ASSERT_EQ(nii.code, 0) << nii.err;
  EXPECT_TRUE(torch::equal(seg::io::read_label_map(out / "nii/JPCNN008.nii.gz").pixels, before));
  EXPECT_TRUE(torch::equal(mask("nii", "left_lung", ".nii.gz"), (after == 2).to(torch::kByte)));
}
