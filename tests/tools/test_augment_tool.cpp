// seg-augment in-process: files written, labels in the class set, seeds, identity.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tool_run.h"

namespace fs = std::filesystem;
using nlohmann::json;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

namespace {

auto augment(const seg::tools::Args& args) { return run_tool_in_process(seg::tools::augment, args); }

// One 48 x 40 case with a gradient image and three labelled blocks.
fs::path one_case_pack(const ScratchDir& tmp) {
  seg::Dataset d;
  d.name = "blocks";
  d.source = "memory";
  auto ys = torch::arange(48).view({48, 1}), xs = torch::arange(40).view({1, 40});
  d.images = (ys * 3 + xs * 2).clamp_max(255).to(torch::kByte).unsqueeze(0);
  d.labels = torch::zeros({1, 48, 40}, torch::kByte);
  d.labels[0].slice(0, 5, 20).slice(1, 5, 18).fill_(1);
  d.labels[0].slice(0, 25, 40).slice(1, 5, 18).fill_(2);
  d.labels[0].slice(0, 10, 35).slice(1, 24, 34).fill_(3);
  d.cases = {"blk"};
  d.classes = seg::ClassTable::numbered(4);
  d.splits["train"] = {"blk"};
  const auto path = tmp / "blocks.pth";
  seg::save_tensor_pack(d, path);
  return path;
}

at::Tensor read_pixels(const fs::path& p) { return seg::io::read_image(p).pixels; }

}  // namespace

class AugmentTool : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

TEST_F(AugmentTool, WritesPairsMontageAndRecord) {
  ScratchDir tmp;
  const auto pack = one_case_pack(tmp).string();
  const auto out = tmp / "aug";
  auto r = augment({"--data", pack, "--case", "blk", "--count", "3", "--seed", "5", "-o", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("seed 5"), std::string::npos) << r.out;
  EXPECT_EQ(seg::testing::list_files(out),
            (std::vector<std::string>{"augment.json", "images/blk_aug01.png", "images/blk_aug02.png",
                                      "images/blk_aug03.png", "labels/blk_aug01.png", "labels/blk_aug02.png",
                                      "labels/blk_aug03.png", "montage.png"}));
  for (int k = 1; k <= 3; ++k) {
    auto labels = seg::io::read_label_map(out / ("labels/blk_aug0" + std::to_string(k) + ".png")).pixels;
    ASSERT_EQ(labels.sizes(), (c10::IntArrayRef{48, 40}));
    EXPECT_LE(labels.max().item<int>(), 3);
    EXPECT_EQ(read_pixels(out / ("images/blk_aug0" + std::to_string(k) + ".png")).sizes(), labels.sizes());
  }
  auto record = json::parse(seg::read_file(out / "augment.json"));
  EXPECT_EQ(record["seed"].get<int>(), 5);
  ASSERT_EQ(record["samples"].size(), 3u);
  const auto theta = record["samples"][0]["theta"];
  EXPECT_NEAR(theta[0][0].get<double>(), 1.0, 0.5);  // I + 0.1 * randn
  EXPECT_NEAR(theta[1][2].get<double>(), 0.0, 0.5);
  // The montage holds the original and three samples: wider than one tile.
  EXPECT_GT(seg::io::read_image(out / "montage.png", {/*to_gray=*/true}).pixels.size(1), 40 * 2);
}

TEST_F(AugmentTool, SameSeedSameFilesDifferentSeedDifferent) {
  ScratchDir tmp;
  const auto pack = one_case_pack(tmp).string();
  auto run = [&](const std::string& seed, const std::string& dir) {
    auto r = augment({"--data", pack, "--case", "blk", "--count", "2", "--seed", seed, "-o", (tmp / dir).string()});
    EXPECT_EQ(r.code, 0) << r.err;
    return std::make_pair(read_pixels(tmp / dir / "images/blk_aug02.png"),
                          read_pixels(tmp / dir / "labels/blk_aug02.png"));
  };
  auto a = run("11", "a"), b = run("11", "b"), c = run("12", "c");
  EXPECT_TRUE(torch::equal(a.first, b.first));
  EXPECT_TRUE(torch::equal(a.second, b.second));
  EXPECT_FALSE(torch::equal(a.first, c.first));
}

TEST_F(AugmentTool, ScaleZeroIsTheIdentity) {
  ScratchDir tmp;
  const auto pack_path = one_case_pack(tmp);
  auto r = augment({"--data", pack_path.string(), "--case", "blk", "--count", "1", "--augment-scale", "0", "-o",
                    (tmp / "id").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  auto pack = seg::load_tensor_pack(pack_path);
  EXPECT_TRUE(torch::equal(read_pixels(tmp / "id/images/blk_aug01.png"), pack.images[0]));
  EXPECT_TRUE(torch::equal(read_pixels(tmp / "id/labels/blk_aug01.png"), pack.labels[0]));
}

TEST_F(AugmentTool, RealCaseFromTheDataSetFolder) {
  SEG_REQUIRE_JSRT(dir);
  ScratchDir tmp;
  auto r = augment({"--data", dir.string(), "--case", "JPCLN001", "--count", "2", "--seed", "1", "-o",
                    (tmp / "out").string(), "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto labels = seg::io::read_label_map(tmp / "out/labels/JPCLN001_aug01.png").pixels;
  EXPECT_EQ(labels.sizes(), (c10::IntArrayRef{256, 256}));
  EXPECT_LE(labels.max().item<int>(), 5);
  EXPECT_GT(labels.eq(3).sum().item<int64_t>(), 1000);  // the heart survives a small warp
}

TEST_F(AugmentTool, ErrorsAndUsage) {
  ScratchDir tmp;
  const auto pack = one_case_pack(tmp).string();
  auto missing = augment({"--data", pack, "--case", "nope", "-o", (tmp / "o").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("has no case nope"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(tmp / "o"));
  EXPECT_EQ(augment({"--data", pack, "--case", "blk"}).code, 2);  // no -o
  EXPECT_EQ(augment({"--data", pack, "-o", (tmp / "o").string()}).code, 2);  // no --case
  EXPECT_EQ(augment({"--data", pack, "--case", "blk", "--count", "0", "-o", (tmp / "o").string()}).code, 2);
  EXPECT_EQ(augment({"--data", pack, "--case", "blk", "--device", "tpu", "-o", (tmp / "o").string()}).code, 2);
}

TEST_F(AugmentTool, PaddingShowsWhatTrainingSeesBeyondTheImage) {
  // A widened field of view (zoom factor > 1.2) samples beyond the bottom-right corner, whose
  // pixel is 219: zeros pads black there, border repeats the edge.
  ScratchDir tmp;
  const auto pack = one_case_pack(tmp).string();
  auto corner_of_wide_samples = [&](const std::string& padding) {
    const auto out = tmp / padding;
    auto r = augment({"--data", pack, "--case", "blk", "--count", "8", "--seed", "3", "--augment-scale", "0", "--augment-zoom",
                      "0.5", "--padding", padding, "-o", out.string()});
    EXPECT_EQ(r.code, 0) << r.err;
    const auto record = json::parse(seg::read_file(out / "augment.json"));
    EXPECT_EQ(record["padding"], padding);
    std::vector<int> corners;
    for (const auto& s : record["samples"])
      if (s["theta"][0][0].get<double>() > 1.2) corners.push_back(read_pixels(s["image"].get<std::string>())[47][39].item<int>());
    return corners;
  };
  const auto zeros = corner_of_wide_samples("zeros"), border = corner_of_wide_samples("border");
  ASSERT_FALSE(zeros.empty());
  ASSERT_EQ(zeros.size(), border.size());
  for (size_t i = 0; i < zeros.size(); ++i) {
    EXPECT_EQ(zeros[i], 0);
    EXPECT_GT(border[i], 200);
  }
  EXPECT_EQ(augment({"--data", pack, "--case", "blk", "--padding", "mirror", "-o", (tmp / "bad").string()}).code, 2);
}

TEST_F(AugmentTool, RotationTurnsThePixelsOfANonSquareImage) {
  ScratchDir tmp;
  const auto pack = one_case_pack(tmp).string();  // 40 wide, 48 high
  const auto out = tmp / "turned";
  auto r = augment({"--data", pack, "--case", "blk", "--count", "6", "--seed", "2", "--augment-scale", "0", "--augment-rotation",
                    "40", "-o", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto record = json::parse(seg::read_file(out / "augment.json"));
  EXPECT_EQ(record["augmentation"]["rotation"].get<double>(), 40.0);
  const double aspect = 40.0 / 48.0;
  double largest_turn = 0;
  for (const auto& s : record["samples"]) {
    // theta in pixels (normalised coordinates are pixels times 2 / width, 2 / height) is a turn.
    const auto& t = s["theta"];
    const double a = t[0][0].get<double>(), b = t[0][1].get<double>() * aspect, c = t[1][0].get<double>() / aspect,
                 d = t[1][1].get<double>();
    EXPECT_NEAR(a * a + c * c, 1.0, 1e-5);
    EXPECT_NEAR(b * b + d * d, 1.0, 1e-5);
    EXPECT_NEAR(a * b + c * d, 0.0, 1e-5);
    largest_turn = std::max(largest_turn, std::abs(std::atan2(c, a)) * 180 / M_PI);
    // What the turn moves beyond the frame is background; the rest keeps its labels.
    const auto labels = read_pixels(s["labels"].get<std::string>());
    EXPECT_GT(labels.eq(3).sum().item<int64_t>(), 100);
  }
  EXPECT_GT(largest_turn, 10.0);
  EXPECT_LE(largest_turn, 40.0 + 1e-3);
  EXPECT_EQ(augment({"--data", pack, "--case", "blk", "--augment-rotation", "200", "-o", (tmp / "bad").string()}).code, 2);
  EXPECT_FALSE(fs::exists(tmp / "bad"));
}

TEST_F(AugmentTool, TextureAndProcessingChangeTheImageNotItsLabelsOrGreyScale) {
  ScratchDir tmp;
  const auto pack_path = one_case_pack(tmp);
  const auto pack = seg::load_tensor_pack(pack_path);
  const auto original = pack.images[0].to(torch::kFloat);
  for (const std::string option : {"texture", "processing"}) {
    const auto out = tmp / option;
    auto r = augment({"--data", pack_path.string(), "--case", "blk", "--count", "2", "--seed", "4", "--augment-scale", "0",
                      "--augment-" + option, "1", "-o", out.string()});
    ASSERT_EQ(r.code, 0) << option << ": " << r.err;
    for (const char* k : {"01", "02"}) {
      const auto image = read_pixels(out / "images" / (std::string("blk_aug") + k + ".png")).to(torch::kFloat);
      EXPECT_TRUE(torch::equal(read_pixels(out / "labels" / (std::string("blk_aug") + k + ".png")), pack.labels[0]));
      EXPECT_GT((image - original).abs().max().item<double>(), 1.0) << option << " " << k;
      EXPECT_NEAR(image.mean().item<double>(), original.mean().item<double>(), 3.0) << option << " " << k;
    }
    EXPECT_EQ(json::parse(seg::read_file(out / "augment.json"))["augmentation"][option].get<double>(), 1.0) << option;
    const auto bad = augment({"--data", pack_path.string(), "--case", "blk", "--augment-" + option, "-1", "-o", (tmp / "bad").string()});
    EXPECT_EQ(bad.code, 2) << option;
    EXPECT_NE(bad.err.find("--augment-" + option + " must be 0 or more"), std::string::npos) << bad.err;
  }
}

// --recipe shows what training with that recipe (or that run) draws.
TEST_F(AugmentTool, RecipeShowsItsAugmentations) {
  ScratchDir tmp;
  const auto pack = one_case_pack(tmp).string();
  auto strengths_of = [&](const std::vector<std::string>& more, const std::string& dir) {
    std::vector<std::string> args{"--data", pack, "--case", "blk", "--count", "2", "--seed", "1", "-o", (tmp / dir).string()};
    args.insert(args.end(), more.begin(), more.end());
    const auto r = augment(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(seg::read_file(tmp / dir / "augment.json"))["augmentation"];
  };
  const auto res_unet = strengths_of({"--recipe", "res-unet"}, "res");
  EXPECT_EQ(res_unet["scale"], 0.1);
  EXPECT_EQ(res_unet["intensity"], 0.2);
  EXPECT_EQ(res_unet["zoom"], 0.5);
  EXPECT_EQ(res_unet["opacity"], 0.0);
  // A staged recipe: its last stage unless told; options still override.
  EXPECT_EQ(strengths_of({"--recipe", "jsrt-fast"}, "last")["devices"], 0.5);
  const auto first = strengths_of({"--recipe", "jsrt-fast", "--stage", "1", "--augment-zoom", "0.25"}, "first");
  EXPECT_EQ(first["devices"], 0.0);
  EXPECT_EQ(first["zoom"], 0.25);
  // A run folder: the recipe its run.json recorded.
  fs::create_directories(tmp / "run");
  seg::write_file_atomically(tmp / "run" / "run.json", R"({"data": "x", "recipe": {"augmentation": {"scale": 0, "opacity": 0.7}}})");
  const auto run = strengths_of({"--recipe", (tmp / "run").string()}, "from-run");
  EXPECT_EQ(run["opacity"], 0.7);
  EXPECT_EQ(run["scale"], 0.0);
  EXPECT_EQ(augment({"--data", pack, "--case", "blk", "--recipe", "jsrt-fast", "--stage", "5", "-o", (tmp / "bad").string()}).code, 2);
}

// The options seg-augment had before it took seg-train's names still work, for now.
TEST_F(AugmentTool, OldOptionNamesAreAliases) {
  ScratchDir tmp;
  const auto pack = one_case_pack(tmp).string();
  auto image_of = [&](const std::vector<std::string>& options, const std::string& dir) {
    std::vector<std::string> args{"--data", pack, "--case", "blk", "--count", "1", "--seed", "6", "-o", (tmp / dir).string()};
    args.insert(args.end(), options.begin(), options.end());
    EXPECT_EQ(augment(args).code, 0);
    return read_pixels(tmp / dir / "images/blk_aug01.png");
  };
  EXPECT_TRUE(torch::equal(image_of({"--zoom", "0.5", "--scale", "0.02"}, "old"), image_of({"--augment-zoom", "0.5", "--augment-scale", "0.02"}, "new")));
  EXPECT_FALSE(torch::equal(image_of({"--zoom", "0.5"}, "zoomed"), image_of({}, "plain")));
}
