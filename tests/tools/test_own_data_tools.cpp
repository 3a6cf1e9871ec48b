// The tools on a data set that is not JSRT (generated: 16-bit films of three shapes): what
// seg-convert keeps, what seg-inspect warns about, missing files in seg-train and seg-weights,
// and seg-segment's warning for a film on another scale than the model's training films.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "shapes_dataset.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

using seg::testing::contains;
using seg::testing::image_of;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;
namespace fs = std::filesystem;
namespace io = seg::io;

namespace {

size_t occurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// The user's kind of set, small: 6 films of 40 x 32 (height x width), 16 bit, train 4 / test 2,
// with a description.
fs::path shapes_folder(const ScratchDir& tmp, const std::string& name = "set") {
  auto d = seg::testing::shapes_dataset(6, 40, 32, 4);
  d.description = "discs, rectangles and rings";
  io::write_dataset_folder(d, tmp / name);
  return tmp / name;
}

void add_key(const fs::path& dir, const std::string& key, const nlohmann::json& value) {
  auto j = nlohmann::ordered_json::parse(seg::read_file(dir / "dataset.json"));
  j[key] = value;
  seg::write_file_atomically(dir / "dataset.json", j.dump(1));
}

}  // namespace

TEST(OwnDataConvert, SixteenBitSetThroughPackFolderAndNiftiKeepsTypeLabelsAndDescription) {
  ScratchDir tmp;
  const auto set = shapes_folder(tmp);
  const auto original = io::load_dataset(set);
  ASSERT_EQ(original.images.scalar_type(), torch::kInt);

  auto r = run_tool_in_process(seg::tools::convert, {set.string(), "-o", (tmp / "set.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "6 cases of 40x32 (height x width)")) << r.out;
  const auto pack = seg::load_tensor_pack(tmp / "set.pth");
  EXPECT_EQ(pack.images.scalar_type(), torch::kInt);
  EXPECT_EQ(pack.description, "discs, rectangles and rings");

  r = run_tool_in_process(seg::tools::convert, {(tmp / "set.pth").string(), "-o", (tmp / "again").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "uint16 images as .png")) << r.out;
  EXPECT_FALSE(contains(r.out, "spacing")) << r.out;  // PNG stores none, so nothing is assumed
  EXPECT_EQ(io::read_image(tmp / "again" / "images" / "s2.png").pixel_type, "uint16");
  const auto again = io::load_dataset(tmp / "again");
  EXPECT_TRUE(torch::equal(again.images, original.images));
  EXPECT_EQ(again.description, "discs, rectangles and rings");

  r = run_tool_in_process(seg::tools::convert, {set.string(), "--format", "nii.gz", "-o", (tmp / "nii").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(occurrences(r.out, "no spacing in the sources: 1 x 1 mm assumed\n"), 1u) << r.out;
  EXPECT_TRUE(contains(r.out, "label maps as .nii.gz")) << r.out;
  const auto spec = seg::DatasetSpec::read(tmp / "nii" / "dataset.json");
  EXPECT_EQ(spec.images_pattern, "images/{case}.nii.gz");
  EXPECT_EQ(spec.labels_pattern, "labels/{case}.nii.gz");
  EXPECT_EQ(spec.description, "discs, rectangles and rings");
  EXPECT_EQ(spec.name, original.name);
  EXPECT_EQ(spec.size, (std::vector<int64_t>{40, 32}));
  EXPECT_EQ(spec.splits, original.splits);
  EXPECT_EQ(spec.classes.entries, original.classes.entries);
  EXPECT_EQ(io::read_image(tmp / "nii" / "images" / "s0.nii.gz").pixel_type, "uint16");
  EXPECT_EQ(io::read_image(tmp / "nii" / "labels" / "s0.nii.gz").pixel_type, "uint8");
  EXPECT_EQ(seg::testing::list_files(tmp / "nii").size(), 1u + 2u * 6u);  // no PNG left behind
  const auto nii = io::load_dataset(tmp / "nii");
  EXPECT_TRUE(torch::equal(nii.images, original.images));
  EXPECT_TRUE(torch::equal(nii.labels, original.labels));

  // NIfTI sources carry their spacing: nothing is assumed.
  r = run_tool_in_process(seg::tools::convert, {(tmp / "nii").string(), "--format", "mha", "-o", (tmp / "mha").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(contains(r.out, "spacing")) << r.out;
  EXPECT_EQ(io::read_image(tmp / "mha" / "images" / "s0.mha").pixel_type, "uint16");
}

TEST(OwnDataConvert, UnknownKeysAreWarnedAboutOnceAndMissingSizeIsExplained) {
  ScratchDir tmp;
  const auto set = shapes_folder(tmp);
  add_key(set, "descripton", "typo");
  auto r = run_tool_in_process(seg::tools::convert, {set.string(), "-o", (tmp / "p.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "seg-convert: warning: " + (set / "dataset.json").string() +
                       ": unknown key \"descripton\" (did you mean \"description\"?)\n");
}

TEST(OwnDataInspect, SizesSayTheirOrderAndMixedDepthsAreWarnedAbout) {
  ScratchDir tmp;
  const auto set = shapes_folder(tmp);
  add_key(set, "splits", {{"train", {"s0"}}});
  auto r = run_tool_in_process(seg::tools::inspect, {set.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "description: discs, rectangles and rings\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "image size: 40 x 32 (height x width), 6 cases\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "pixel type: uint16, 6 cases\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "warning: unknown key \"splits\" (did you mean \"split\"?)\n")) << r.out;
  EXPECT_FALSE(contains(r.out, "pixel types differ")) << r.out;

  // Three films saved as 8-bit instead.
  const auto narrow = seg::testing::shapes_dataset(6, 40, 32, 4, 255, torch::kByte);
  for (int i : {0, 2, 4}) io::write_image(set / "images" / ("s" + std::to_string(i) + ".png"), image_of(narrow.images[i], "uint8"));
  r = run_tool_in_process(seg::tools::inspect, {set.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "pixel type: uint16, 3 cases; uint8, 3 cases\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "warning: pixel types differ: uint16 (3 cases), uint8 (3 cases): a model that normalises by "
                              "data-set statistics sees them on different scales; train with per-image normalisation "
                              "(--normalize image)\n"))
      << r.out;

  r = run_tool_in_process(seg::tools::inspect, {set.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["image_sizes"], nlohmann::json::parse(R"([{"height": 40, "width": 32, "cases": 6}])"));
  EXPECT_EQ(j["pixel_types"], nlohmann::json::parse(R"({"uint16": 3, "uint8": 3})"));
  EXPECT_EQ(j["description"], "discs, rectangles and rings");

  r = run_tool_in_process(seg::tools::inspect, {(set / "images" / "s1.png").string()});
  EXPECT_TRUE(contains(r.out, "size: 40 x 32 (height x width)\n")) << r.out;
  EXPECT_EQ(nlohmann::json::parse(run_tool_in_process(seg::tools::inspect, {(set / "images" / "s1.png").string(), "--json"}).out)["size_order"],
            "HxW");
}

TEST(OwnDataTrain, MissingFilesStopTheRunTogetherOrAreLeftOutAndCounted) {
  ScratchDir tmp;
  const auto set = shapes_folder(tmp);
  fs::remove(set / "labels" / "s1.png");
  fs::remove(set / "images" / "s3.png");
  const seg::tools::Args args{"--data", set.string(), "--model", "fcn", "--epochs", "1", "--batch", "2",
                              "--threads", "1"};
  auto args_to = [&](const std::string& run) {
    auto a = args;
    a.insert(a.end(), {"--out", (tmp / run).string()});
    return a;
  };
  auto r = run_tool_in_process(seg::tools::train, args_to("refused"));
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "2 of 6 cases have files missing: s1 (labels/s1.png), s3 (images/s3.png)")) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "refused"));

  auto skipping = args_to("run");
  skipping.push_back("--skip-missing");
  r = run_tool_in_process(seg::tools::train, skipping);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "data: 2 cases left out for missing files (s1, s3)\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "2 training cases")) << r.out;  // s0, s2 of train s0..s3
  // A model that normalises by data-set statistics records its training intensities: the
  // training films hold background (819), rectangle (2048), disc (3276) and ring (3890).
  const auto model = seg::load_model(tmp / "run" / "model.pth");
  EXPECT_EQ(model.info.normalization.mode, "dataset");
  ASSERT_TRUE(model.info.training_intensity.has_value());
  EXPECT_EQ(model.info.training_intensity->low, 819);
  EXPECT_EQ(model.info.training_intensity->high, 3890);

  r = run_tool_in_process(seg::tools::weights, {"--data", set.string(), "--skip-missing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "from 2 case(s) of split train of " + set.string() +
                                  "; 2 cases left out for missing files (s1, s3)\n")) << r.out;
  r = run_tool_in_process(seg::tools::weights, {"--data", set.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "--skip-missing")) << r.err;
}

TEST(OwnDataSegment, WarnsOnceNamingTheFirstFilmFarOutsideTheTrainingIntensities) {
  ScratchDir tmp;
  // A model as seg-train leaves it after 16-bit films (untrained weights: only the check matters).
  seg::Model model;
  model.info.network = {"fcn", 1, 4};
  model.info.classes = seg::ClassTable::numbered(4);
  model.info.input_size = {40, 32};
  model.info.normalization = {"dataset", 1400, 900};
  model.info.training_intensity = seg::IntensityRange{819, 3890};
  model.net = seg::make_network(model.info.network);
  seg::save_model(model, tmp / "model.pth");

  const auto wide = seg::testing::shapes_dataset(2, 40, 32, 2);
  const auto narrow = seg::testing::shapes_dataset(2, 40, 32, 2, 255, torch::kByte);
  fs::create_directories(tmp / "films");
  io::write_image(tmp / "films" / "wide.png", image_of(wide.images[0], "uint16"));
  for (int i = 1; i <= 6; ++i)
    io::write_image(tmp / "films" / ("narrow" + std::to_string(i) + ".png"), image_of(narrow.images[(i - 1) % 2], "uint8"));

  // Two threads: films are read on two workers, and still the first far film in input order is named.
  auto segment = [&](const std::vector<std::string>& films, const std::string& out) {
    seg::tools::Args args{"--model", (tmp / "model.pth").string(), "-o", (tmp / out).string(), "--threads", "2"};
    for (const auto& f : films) args.push_back((tmp / "films" / f).string());
    return run_tool_in_process(seg::tools::segment, args);
  };
  auto r = segment({"wide.png"}, "wide");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");

  r = segment({"wide.png", "narrow1.png", "narrow2.png", "narrow3.png", "narrow4.png", "narrow5.png", "narrow6.png"}, "mixed");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(occurrences(r.err, "seg-segment: warning: "), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "seg-segment: warning: " + (tmp / "films" / "narrow1.png").string() +
                                  "'s intensities (51..242) lie far outside those the model was trained on (819..3890); "
                                  "it normalises by its training set's statistics, so expect poor masks"))
      << r.err;
  EXPECT_TRUE(fs::exists(tmp / "mixed" / "narrow6.png"));  // a warning, not an error
}
