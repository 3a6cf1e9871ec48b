// seg-inspect, run in-process.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/report_text.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "common.h"
#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

using seg::testing::contains;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

auto inspect(const seg::tools::Args& args) { return seg::testing::run_tool_in_process(seg::tools::inspect, args); }

}  // namespace

TEST(Inspect, RealJsrtHas247CasesTwoSplitsSixClasses) {
  SEG_REQUIRE_JSRT(dir);
  auto r = inspect({dir.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "cases: 247 (247 with label maps)")) << r.out;
  EXPECT_TRUE(contains(r.out, "splits: train 160 test 87")) << r.out;
  EXPECT_TRUE(contains(r.out, "classes: 6 (0 background, 1 right_lung")) << r.out;
  EXPECT_TRUE(contains(r.out, "image size: 256 x 256 (height x width), 247 cases")) << r.out;
  EXPECT_TRUE(contains(r.out, "warnings: none")) << r.out;

  r = inspect({dir.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["cases"], 247);
  EXPECT_EQ(j["splits"]["train"], 160);
  EXPECT_EQ(j["splits"]["test"], 87);
  EXPECT_EQ(j["classes"].size(), 6u);
  // Pixel counts over all 247 label maps sum to 247 * 256 * 256.
  int64_t total = 0;
  for (const auto& entry : j["labels"]) total += entry["pixels"].get<int64_t>();
  EXPECT_EQ(total, 247LL * 256 * 256);
  EXPECT_TRUE(j["warnings"].empty());
}

TEST(Inspect, OverlayOfARealCase) {
  SEG_REQUIRE_JSRT(dir);
  ScratchDir tmp;
  auto r = inspect({dir.string(), "--overlay", (tmp / "o.png").string(), "--case", "JPCNN009"});
  ASSERT_EQ(r.code, 0) << r.err;
  io::ReadOptions gray;
  gray.to_gray = true;
  EXPECT_EQ(io::read_image(tmp / "o.png", gray).width(), 512 + 170);
  r = inspect({dir.string(), "--overlay", (tmp / "p.png").string(), "--case", "NOPE"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "NOPE")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "p.png"));
}

TEST(Inspect, WarnsAboutEverythingOdd) {
  ScratchDir tmp;
  seg::Dataset d;
  d.name = "odd";
  d.source = "memory";
  d.images = torch::randint(0, 256, {4, 8, 8}, torch::kByte);
  d.labels = torch::randint(0, 3, {4, 8, 8}, torch::kByte);
  d.cases = {"a", "b", "c", "extra"};
  d.classes = seg::ClassTable::numbered(4);  // label_3 never occurs
  d.splits["train"] = {"a", "b", "c"};
  io::write_dataset_folder(d, tmp / "set");
  std::filesystem::remove(tmp / "set" / "labels" / "b.png");
  seg::Image other;
  other.pixels = torch::full({6, 6}, 9, torch::kByte);
  io::write_image(tmp / "set" / "images" / "c.png", other);
  io::write_label_map(tmp / "set" / "labels" / "c.png", other);

  auto r = inspect({(tmp / "set").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "cases: 4 (3 with label maps)")) << r.out;
  for (const std::string warning : {"1 cases have no label map (first: b", "1 cases are in no split",
                                    "label value 9 (36 pixels) is not in the class table", "image sizes differ",
                                    "c.png is 6 x 6 (height x width), not the stated size 8 x 8", "class label_3 (3) has no pixels"})
    EXPECT_TRUE(contains(r.out, warning)) << warning << "\n" << r.out;
  size_t warning_lines = 0;
  for (size_t at = r.out.find("\nwarning: "); at != std::string::npos; at = r.out.find("\nwarning: ", at + 1)) ++warning_lines;
  EXPECT_EQ(warning_lines, 6u) << r.out;
  EXPECT_EQ(inspect({(tmp / "set").string(), "--strict"}).code, 1);
}

TEST(Inspect, ImageFileShowsGeometryAndLabels) {
  ScratchDir tmp;
  seg::Image image;
  image.pixels = torch::tensor({{0, 1, 1}, {2, 2, 2}}, torch::kShort);
  image.pixel_type = "int16";
  image.geometry.spacing = {0.25, 0.5};
  image.geometry.has_spacing = true;
  io::write_image(tmp / "a.nii.gz", image);
  auto r = inspect({(tmp / "a.nii.gz").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "size: 2 x 3 (height x width)")) << r.out;
  EXPECT_TRUE(contains(r.out, "pixel type: int16")) << r.out;
  EXPECT_TRUE(contains(r.out, "spacing: 0.25 x 0.5 mm")) << r.out;
  EXPECT_TRUE(contains(r.out, "label_2")) << r.out;  // few integer values: a histogram
  r = inspect({(tmp / "a.nii.gz").string(), "--json"});
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pixel_type"], "int16");
  EXPECT_DOUBLE_EQ(j["spacing"][1].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["intensity"]["max"].get<double>(), 2.0);
  EXPECT_EQ(j["labels"][2]["pixels"], 3);

  // An overlay of an image needs its label map.
  EXPECT_EQ(inspect({(tmp / "a.nii.gz").string(), "--overlay", (tmp / "o.png").string()}).code, 2);
  seg::Image labels;
  labels.pixels = torch::ones({2, 3}, torch::kByte);
  io::write_label_map(tmp / "l.png", labels);
  r = inspect({(tmp / "a.nii.gz").string(), "--overlay", (tmp / "o.png").string(), "--label-map", (tmp / "l.png").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(tmp / "o.png"));
}

TEST(Inspect, MissingAndBrokenFilesAreOneLineErrors) {
  ScratchDir tmp;
  auto r = inspect({(tmp / "none.png").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "seg-inspect: error: " + (tmp / "none.png").string() + ": no such file or folder; check the path\n");
  seg::write_file_atomically(tmp / "broken.png", "garbage");
  r = inspect({(tmp / "broken.png").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "broken.png")) << r.err;
  std::filesystem::create_directories(tmp / "plain");
  r = inspect({(tmp / "plain").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "without dataset.json")) << r.err;
}

// A model is told by its bytes, not its name: model.pt is inspected as seg-segment loads it.
TEST(Inspect, AModelFileUnderAnotherExtensionIsAModel) {
  ScratchDir tmp;
  std::filesystem::copy_file(std::filesystem::path(SEG_SOURCE_DIR) / "share" / "models" / "jsrt-fast.pth", tmp / "fast.pt");
  const auto r = inspect({(tmp / "fast.pt").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "network: fast, 1 input channel(s), 6 classes, ")) << r.out;
}

TEST(Inspect, ModelFileAndRunFolderShowNetworkClassesAndTrainingRecord) {
  const auto shipped = std::filesystem::path(SEG_SOURCE_DIR) / "share" / "models" / "jsrt-fast.pth";
  auto r = inspect({shipped.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "network: fast, 1 input channel(s), 6 classes, ")) << r.out;
  EXPECT_TRUE(contains(r.out, "classes: 0 background 1 right_lung 2 left_lung 3 heart")) << r.out;
  EXPECT_TRUE(contains(r.out, "input size: 256 x 256 (height x width)")) << r.out;
  // Validated on cases held out of the train split, which it names.
  EXPECT_TRUE(contains(r.out, "validation Dice (24 cases held out of split train")) << r.out;
  EXPECT_TRUE(contains(r.out, "validation cases: JPCLN006 JPCLN012 ")) << r.out;
  // The clean-up the model file carries (chosen on validation when it was trained), by name.
  const auto carried = seg::load_model(shipped).info.postprocessing;
  ASSERT_FALSE(carried.empty());
  EXPECT_TRUE(contains(r.out, "post-processing (seg-segment runs it): " + seg::join(carried, ", ") + "\n")) << r.out;

  r = inspect({shipped.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "fast");
  EXPECT_GT(j["trainable_parameters"].get<int64_t>(), 100000);
  EXPECT_EQ(j["classes"].size(), 6u);
  EXPECT_EQ(j["postprocessing"], nlohmann::json(carried));

  // A run folder shows its model.pth; a tensor pack is still a data set.
  ScratchDir tmp;
  std::filesystem::create_directories(tmp / "run");
  std::filesystem::copy_file(shipped, tmp / "run" / "model.pth");
  r = inspect({(tmp / "run").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "model: " + (tmp / "run" / "model.pth").string())) << r.out;
  EXPECT_EQ(inspect({(tmp / "run").string(), "--overlay", (tmp / "o.png").string()}).code, 2);
  seg::save_tensor_pack(seg::testing::random_dataset("p", 3, 8, 8, 2, 2), tmp / "pack.pth");
  r = inspect({(tmp / "pack.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "cases: 3")) << r.out;
  // A run that has not validated yet has a checkpoint but no model: say so.
  std::filesystem::create_directories(tmp / "young");
  std::ofstream(tmp / "young" / "checkpoint.pt") << "x";
  r = inspect({(tmp / "young").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "no model.pth yet")) << r.err;
}
