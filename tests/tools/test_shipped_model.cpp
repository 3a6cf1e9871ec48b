// The model shipped in share/models works from a fresh clone, with no training.
#include <seg/model_file.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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
