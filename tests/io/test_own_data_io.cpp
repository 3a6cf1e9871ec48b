// Loading and writing data sets that are not JSRT: 16-bit images kept, sets of mixed depths,
// missing files named together (or left out), images of several sizes, geometry kept.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "shapes_dataset.h"
#include "test_support.h"

using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::image_of;
using seg::testing::list_files;
using seg::testing::ScratchDir;
namespace fs = std::filesystem;
namespace io = seg::io;

namespace {

// dataset.json of `dir` with `key` set to `value` (or removed when value is null).
void edit_dataset_json(const fs::path& dir, const std::string& key, const nlohmann::json& value) {
  auto j = nlohmann::ordered_json::parse(seg::read_file(dir / "dataset.json"));
  if (value.is_null()) j.erase(key);
  else j[key] = value;
  seg::write_file_atomically(dir / "dataset.json", j.dump(1));
}

}  // namespace

TEST(OwnDataIo, SixteenBitImagesStaySixteenBitThroughFolders) {
  ScratchDir tmp;
  const auto d = seg::testing::shapes_dataset(4, 20, 16, 3);
  io::write_dataset_folder(d, tmp / "set");
  EXPECT_EQ(io::read_image(tmp / "set" / "images" / "s0.png").pixel_type, "uint16");
  const auto back = io::load_dataset(tmp / "set");
  EXPECT_EQ(back.images.scalar_type(), torch::kInt);
  EXPECT_EQ(seg::stored_pixel_type(back.images), "uint16");
  EXPECT_TRUE(torch::equal(back.images, d.images));
  EXPECT_TRUE(torch::equal(back.labels, d.labels));
  EXPECT_TRUE(back.warnings.empty());
  EXPECT_TRUE(back.geometry.empty());  // PNG states no spacing

  // As NIfTI: images uint16, label maps uint8 beside them, dataset.json naming both.
  io::write_dataset_folder(back, tmp / "nii", ".nii.gz");
  const auto spec = seg::DatasetSpec::read(tmp / "nii" / "dataset.json");
  EXPECT_EQ(spec.images_pattern, "images/{case}.nii.gz");
  EXPECT_EQ(spec.labels_pattern, "labels/{case}.nii.gz");
  EXPECT_EQ(io::read_image(tmp / "nii" / "images" / "s1.nii.gz").pixel_type, "uint16");
  EXPECT_EQ(io::read_image(tmp / "nii" / "labels" / "s1.nii.gz").pixel_type, "uint8");
  const auto nii = io::load_dataset(tmp / "nii");
  EXPECT_TRUE(torch::equal(nii.images, d.images));
  EXPECT_TRUE(torch::equal(nii.labels, d.labels));
}

TEST(OwnDataIo, Int16AndFloatImagesGoToNiftiWhenPngCannotHoldThem) {
  ScratchDir tmp;
  auto d = seg::testing::shapes_dataset(2, 8, 8, 1, 1000, torch::kShort);
  d.images[0][0][0] = -7;
  io::write_dataset_folder(d, tmp / "short");
  EXPECT_EQ(seg::DatasetSpec::read(tmp / "short" / "dataset.json").images_pattern, "images/{case}.nii.gz");
  EXPECT_EQ(seg::DatasetSpec::read(tmp / "short" / "dataset.json").labels_pattern, "labels/{case}.png");
  const auto back = io::load_dataset(tmp / "short");
  EXPECT_EQ(back.images.scalar_type(), torch::kShort);
  EXPECT_TRUE(torch::equal(back.images, d.images));
  EXPECT_EQ(io::image_extension_for(seg::testing::shapes_dataset(1, 4, 4, 1, 1, torch::kFloat), ".png"), ".nii.gz");
  EXPECT_EQ(io::image_extension_for(seg::testing::shapes_dataset(1, 4, 4, 1, 200, torch::kByte), ".png"), ".png");
}

TEST(OwnDataIo, MixedDepthsAreKeptAsTheWiderTypeWithAWarning) {
  ScratchDir tmp;
  const auto wide = seg::testing::shapes_dataset(3, 12, 10, 2, 4095);
  const auto narrow = seg::testing::shapes_dataset(3, 12, 10, 2, 255, torch::kByte);
  io::write_dataset_folder(wide, tmp / "set");
  io::write_image(tmp / "set" / "images" / "s1.png", image_of(narrow.images[1], "uint8"));
  EXPECT_EQ(io::read_image(tmp / "set" / "images" / "s1.png").pixel_type, "uint8");
  const auto back = io::load_dataset(tmp / "set");
  EXPECT_EQ(back.images.scalar_type(), torch::kInt);
  EXPECT_TRUE(torch::equal(back.images[0], wide.images[0]));
  EXPECT_TRUE(torch::equal(back.images[1], narrow.images[1].to(torch::kInt)));  // values kept, not rescaled
  ASSERT_EQ(back.warnings.size(), 1u);
  EXPECT_TRUE(contains(back.warnings[0], "pixel types differ: uint16 (2 cases), uint8 (1 case)")) << back.warnings[0];
}

TEST(OwnDataIo, MissingFilesAreNamedTogetherAndCanBeLeftOut) {
  ScratchDir tmp;
  const auto d = seg::testing::shapes_dataset(9, 8, 8, 6);
  io::write_dataset_folder(d, tmp / "set");
  fs::remove(tmp / "set" / "labels" / "s1.png");
  fs::remove(tmp / "set" / "images" / "s4.png");
  fs::remove(tmp / "set" / "images" / "s7.png");
  fs::remove(tmp / "set" / "labels" / "s7.png");
  const auto message = error_of([&] { io::load_dataset(tmp / "set"); });
  EXPECT_TRUE(contains(message, (tmp / "set" / "dataset.json").string() + ": 3 of 9 cases have files missing: s1 (labels/s1.png), "
                                    "s4 (images/s4.png), s7 (images/s7.png, labels/s7.png); ")) << message;
  EXPECT_TRUE(contains(message, "--skip-missing")) << message;

  io::LoadOptions skip;
  skip.skip_missing = true;
  const auto kept = io::load_dataset(tmp / "set", skip);
  EXPECT_EQ(kept.left_out, (std::vector<std::string>{"s1", "s4", "s7"}));
  EXPECT_EQ(kept.cases, (std::vector<std::string>{"s0", "s2", "s3", "s5", "s6", "s8"}));
  EXPECT_EQ(kept.splits.at("train"), (std::vector<std::string>{"s0", "s2", "s3", "s5"}));
  EXPECT_EQ(kept.splits.at("test"), (std::vector<std::string>{"s6", "s8"}));
  EXPECT_TRUE(torch::equal(kept.images[2], d.images[3]));
  EXPECT_TRUE(torch::equal(kept.labels[5], d.labels[8]));

  // Unlabelled use: a missing label map still counts when other cases have theirs.
  io::LoadOptions images_only;
  images_only.require_labels = false;
  EXPECT_TRUE(contains(error_of([&] { io::load_dataset(tmp / "set", images_only); }), "s1 (labels/s1.png)"));
}

TEST(OwnDataIo, MoreThanFiveMissingCasesAreCounted) {
  ScratchDir tmp;
  io::write_dataset_folder(seg::testing::shapes_dataset(8, 8, 8, 8), tmp / "set");
  for (int i = 0; i < 7; ++i) fs::remove(tmp / "set" / "labels" / ("s" + std::to_string(i) + ".png"));
  const auto message = error_of([&] { io::load_dataset(tmp / "set"); });
  EXPECT_TRUE(contains(message, "7 of 8 cases have files missing: s0 (labels/s0.png), s1 (labels/s1.png), "
                                "s2 (labels/s2.png), s3 (labels/s3.png), s4 (labels/s4.png) and 2 more;")) << message;
  // Labels not needed and none there: the images alone.
  fs::remove(tmp / "set" / "labels" / "s7.png");
  io::LoadOptions images_only;
  images_only.require_labels = false;
  const auto unlabelled = io::load_dataset(tmp / "set", images_only);
  EXPECT_FALSE(unlabelled.labels.defined());
  EXPECT_EQ(unlabelled.size(), 8);
  // Every case missing: nothing left to leave out.
  io::LoadOptions skip;
  skip.skip_missing = true;
  EXPECT_TRUE(contains(error_of([&] { io::load_dataset(tmp / "set", skip); }), "no case is left"));
}

TEST(OwnDataIo, ImagesOfSeveralSizesNameTwoAndTheWayOut) {
  ScratchDir tmp;
  io::write_dataset_folder(seg::testing::shapes_dataset(3, 128, 160, 3, 255, torch::kByte), tmp / "set");
  edit_dataset_json(tmp / "set", "size", nullptr);
  const auto other = seg::testing::shapes_dataset(2, 120, 90, 2, 255, torch::kByte);
  io::write_image(tmp / "set" / "images" / "s1.png", image_of(other.images[1], "uint8"));
  io::write_label_map(tmp / "set" / "labels" / "s1.png", image_of(other.labels[1], "uint8"));
  const auto message = error_of([&] { io::load_dataset(tmp / "set"); });
  EXPECT_EQ(message, (tmp / "set" / "dataset.json").string() +
                         ": images/s1.png is 120x90 (height x width), images/s0.png 128x160; give \"size\" in "
                         "dataset.json and every case is resampled to it, or resample with seg-convert --size");
  // With "size", every case is resampled to it: images smoothly, labels by nearest neighbour.
  edit_dataset_json(tmp / "set", "size", {64, 80});
  const auto resampled = io::load_dataset(tmp / "set");
  EXPECT_EQ(resampled.images.sizes(), (std::vector<int64_t>{3, 64, 80}));
  EXPECT_TRUE(torch::equal(resampled.labels[1], io::resize_label_map(image_of(other.labels[1], "uint8"), 64, 80).pixels));
}

TEST(OwnDataIo, SourcesWithSpacingKeepItThroughTheFolderAndPack) {
  ScratchDir tmp;
  const auto d = seg::testing::shapes_dataset(2, 10, 12, 1);
  io::write_dataset_folder(d, tmp / "png", ".png");
  auto with_spacing = io::load_dataset(tmp / "png");
  with_spacing.geometry.assign(2, seg::Geometry{});
  with_spacing.geometry[1].spacing = {0.2, 0.3};
  with_spacing.geometry[1].has_spacing = true;
  io::write_dataset_folder(with_spacing, tmp / "nii", ".nii");
  const auto image = io::read_image(tmp / "nii" / "images" / "s1.nii");
  // NIfTI stores spacing as float32.
  EXPECT_NEAR(image.geometry.spacing[0], 0.2, 1e-6);
  EXPECT_NEAR(io::read_image(tmp / "nii" / "labels" / "s1.nii").geometry.spacing[1], 0.3, 1e-6);
  const auto back = io::load_dataset(tmp / "nii");
  ASSERT_EQ(back.geometry.size(), 2u);
  EXPECT_NEAR(back.geometry[1].spacing[1], 0.3, 1e-6);
  // Resampling to half the size doubles the spacing.
  const auto half = io::resample_dataset(back, 5, 6);
  EXPECT_NEAR(half.geometry[1].spacing[0], 0.4, 1e-6);
  EXPECT_NEAR(half.geometry[1].spacing[1], 0.6, 1e-6);
}
