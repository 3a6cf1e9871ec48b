// The model shipped in share/models works from a fresh clone, with no training.
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"

namespace fs = std::filesystem;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

TEST(ShippedModel, CarriesItsMetadataAndIsSmall) {
  const fs::path model = fs::path(SEG_SOURCE_DIR) / "share/models/jsrt-fast.pth";
  ASSERT_TRUE(fs::exists(model));
  EXPECT_LT(fs::file_size(model), 10u * 1024 * 1024);
  const auto m = seg::load_model(model);
  EXPECT_EQ(m.info.network.architecture, "fast");
  EXPECT_EQ(m.info.classes.size(), 6);
  EXPECT_EQ(m.info.classes.name_of(3), "heart");
  EXPECT_NE(m.info.provenance_json.find("val_mean_dice"), std::string::npos);
}

TEST(ShippedModel, SegmentsRealTestCasesWell) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto model = (fs::path(SEG_SOURCE_DIR) / "share/models/jsrt-fast.pth").string();
  auto seg = run_tool_in_process(seg::tools::segment,
                                 {"--model", model, (real / "images/JPCNN009.png").string(),
                                  (real / "images/JPCNN050.png").string(), "-o", (tmp / "seg").string(),
                                  "--largest-component", "--threads", "1"});
  ASSERT_EQ(seg.code, 0) << seg.err;
  auto eval = run_tool_in_process(seg::tools::evaluate, {(tmp / "seg").string(), (real / "labels").string(), "--json"});
  ASSERT_EQ(eval.code, 0) << eval.err;
  const auto report = nlohmann::json::parse(eval.out);
  EXPECT_EQ(report["cases_evaluated"].get<int>(), 2);
  // The shipped model scores 0.93 on the whole test split; a broken one falls far below.
  EXPECT_GT(report["mean_dice"].get<double>(), 0.88) << report["mean_dice_per_label"];
}

// Radiographs from elsewhere: 12-bit pixels, other exposure (gamma), lower contrast. The
// shipped model normalises each image on its own and was trained with intensity
// augmentation, so the lungs still come out right (a model normalised with JSRT's 8-bit
// statistics sees a 12-bit image as blown out).
TEST(ShippedModel, ToleratesOtherBitDepthsExposureAndContrast) {
  SEG_REQUIRE_JSRT(real);
  ScratchDir tmp;
  const auto image = seg::io::read_image(real / "images/JPCNN009.png");
  const auto unit = image.pixels.to(torch::kDouble) / 255.0;
  std::filesystem::create_directories(tmp / "in");
  std::filesystem::create_directories(tmp / "truth");
  const std::vector<std::pair<std::string, seg::Image>> variants = {
      {"bits12", seg::testing::image_of((unit * 4095).round().to(torch::kInt), "uint16")},
      {"gamma06", seg::testing::image_of((unit.pow(0.6) * 255).round().to(torch::kByte), "uint8")},
      {"gamma16", seg::testing::image_of((unit.pow(1.6) * 255).round().to(torch::kByte), "uint8")},
      {"contrast", seg::testing::image_of((unit * 127 + 60).round().to(torch::kByte), "uint8")}};
  for (const auto& [name, variant] : variants) {
    seg::io::write_image(tmp / "in" / (name + ".png"), variant);
    std::filesystem::copy_file(real / "labels/JPCNN009.png", tmp / "truth" / (name + ".png"));
  }
  const auto model = (fs::path(SEG_SOURCE_DIR) / "share/models/jsrt-fast.pth").string();
  auto seg = run_tool_in_process(seg::tools::segment, {"--model", model, (tmp / "in").string(), "-o",
                                                        (tmp / "seg").string(), "--threads", "1"});
  ASSERT_EQ(seg.code, 0) << seg.err;
  auto eval = run_tool_in_process(seg::tools::evaluate, {(tmp / "seg").string(), (tmp / "truth").string(), "--json"});
  ASSERT_EQ(eval.code, 0) << eval.err;
  const auto report = nlohmann::json::parse(eval.out);
  // "dice" lists labels 1..5 in the order of "labels": the lungs first.
  ASSERT_EQ(report["labels"][0]["value"], 1);
  ASSERT_EQ(report["labels"][1]["value"], 2);
  for (const auto& c : report["cases"]) {
    EXPECT_GT(c["dice"][0].get<double>(), 0.95) << c["case"];
    EXPECT_GT(c["dice"][1].get<double>(), 0.95) << c["case"];
  }
  EXPECT_EQ(report["cases"].size(), 4u);
}
