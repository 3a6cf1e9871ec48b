#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "test_support.h"

using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::list_files;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

seg::Dataset small_dataset(int64_t n = 4, int64_t h = 12, int64_t w = 10) {
  seg::Dataset d;
  d.name = "small";
  d.source = "memory";
  d.images = torch::randint(0, 256, {n, h, w}, torch::kByte);
  d.labels = torch::randint(0, 3, {n, h, w}, torch::kByte);
  for (int64_t i = 0; i < n; ++i) d.cases.push_back("c" + std::to_string(i));
  d.classes = seg::ClassTable::numbered(3);
  d.splits["train"] = {d.cases.begin(), d.cases.begin() + n / 2};
  d.splits["test"] = {d.cases.begin() + n / 2, d.cases.end()};
  return d;
}

}  // namespace

TEST(DatasetIo, FolderRoundTripKeepsEverything) {
  ScratchDir tmp;
  auto d = small_dataset();
  io::write_dataset_folder(d, tmp / "set");
  EXPECT_EQ(list_files(tmp / "set").size(), 1u + 2u * 4u);
  for (const auto& path : {tmp / "set", tmp / "set" / "dataset.json"}) {
    auto back = io::load_dataset(path);
    EXPECT_TRUE(torch::equal(back.images, d.images));
    EXPECT_TRUE(torch::equal(back.labels, d.labels));
    EXPECT_EQ(back.cases, d.cases);
    EXPECT_EQ(back.splits, d.splits);
    EXPECT_EQ(back.classes.entries, d.classes.entries);
  }
  auto spec = seg::DatasetSpec::read(tmp / "set" / "dataset.json");
  EXPECT_EQ(spec.size, (std::vector<int64_t>{12, 10}));
}

TEST(DatasetIo, LoadsTensorPacksAndResamples) {
  ScratchDir tmp;
  auto d = small_dataset(2, 8, 8);
  seg::save_tensor_pack(d, tmp / "p.pth");
  io::LoadOptions half;
  half.size = std::make_pair<int64_t, int64_t>(4, 4);
  auto back = io::load_dataset(tmp / "p.pth", half);
  EXPECT_EQ(back.images.sizes(), (std::vector<int64_t>{2, 4, 4}));
  // Labels by the centre of each 2x2 block.
  EXPECT_EQ(back.labels[1][3][2].item<int>(), d.labels[1][7][5].item<int>());
  io::write_dataset_folder(d, tmp / "set");
  auto folder = io::load_dataset(tmp / "set", half);
  EXPECT_TRUE(torch::equal(folder.labels, back.labels));
}

TEST(DatasetIo, EveryBadCaseNamesItsFile) {
  ScratchDir tmp;
  auto d = small_dataset();
  const auto set = tmp / "set";
  io::write_dataset_folder(d, set);
  const auto label_c1 = set / "labels" / "c1.png";

  // Label value outside the class table.
  seg::Image bad;
  bad.pixels = torch::full({12, 10}, 7, torch::kByte);
  io::write_label_map(label_c1, bad);
  auto message = error_of([&] { io::load_dataset(set); });
  EXPECT_TRUE(contains(message, "c1.png") && contains(message, "7")) << message;

  // Label size differs from its image.
  bad.pixels = torch::zeros({12, 11}, torch::kByte);
  io::write_label_map(label_c1, bad);
  message = error_of([&] { io::load_dataset(set); });
  EXPECT_TRUE(contains(message, "c1.png") && contains(message, "12x11")) << message;

  // Missing label map.
  std::filesystem::remove(label_c1);
  message = error_of([&] { io::load_dataset(set); });
  EXPECT_TRUE(contains(message, "c1.png") && contains(message, "missing")) << message;
  io::LoadOptions images_only;
  images_only.require_labels = false;
  EXPECT_TRUE(contains(error_of([&] { io::load_dataset(set, images_only); }), "c1 (labels/c1.png)"));

  // Image of another size than the others, and no "size" to resample them to.
  io::write_dataset_folder(d, tmp / "set2");
  auto spec_json = nlohmann::ordered_json::parse(seg::read_file(tmp / "set2" / "dataset.json"));
  spec_json.erase("size");
  seg::write_file_atomically(tmp / "set2" / "dataset.json", spec_json.dump());
  seg::Image wrong;
  wrong.pixels = torch::zeros({5, 5}, torch::kByte);
  io::write_image(tmp / "set2" / "images" / "c3.png", wrong);
  io::write_label_map(tmp / "set2" / "labels" / "c3.png", wrong);
  message = error_of([&] { io::load_dataset(tmp / "set2"); });
  EXPECT_TRUE(contains(message, "c3.png") && contains(message, "--size")) << message;

  // Missing image; folder without dataset.json; nothing at all.
  std::filesystem::remove(tmp / "set2" / "images" / "c0.png");
  EXPECT_TRUE(contains(error_of([&] { io::load_dataset(tmp / "set2"); }), "c0.png"));
  EXPECT_TRUE(contains(error_of([&] { io::load_dataset(tmp / "set" / "images"); }), "no dataset.json"));
  EXPECT_TRUE(contains(error_of([&] { io::load_dataset(tmp / "nothing"); }), "no such file"));
}

TEST(DatasetIo, SixteenBitSourcesStayIntegersWithValuesKept) {
  ScratchDir tmp;
  auto d = small_dataset(2, 6, 6);
  io::write_dataset_folder(d, tmp / "set");
  seg::Image wide;
  wide.pixels = torch::full({6, 6}, 4000, torch::kInt);
  wide.pixel_type = "uint16";
  io::write_image(tmp / "set" / "images" / "c0.png", wide);
  auto back = io::load_dataset(tmp / "set");
  EXPECT_EQ(back.images.scalar_type(), torch::kInt);
  EXPECT_EQ(back.images[0][0][0].item<int>(), 4000);
  EXPECT_EQ(back.images[1][2][3].item<int>(), d.images[1][2][3].item<int>());
  // Float images are written as NIfTI, since PNG has no float type.
  seg::Image real;
  real.pixels = torch::full({6, 6}, 0.25, torch::kFloat);
  real.pixel_type = "float32";
  io::write_image(tmp / "set" / "images" / "c1.nii.gz", real);
  auto spec_json = nlohmann::ordered_json::parse(seg::read_file(tmp / "set" / "dataset.json"));
  spec_json["images"] = "images/{case}.nii.gz";
  seg::write_file_atomically(tmp / "set" / "dataset.json", spec_json.dump());
  io::write_image(tmp / "set" / "images" / "c0.nii.gz", wide);
  const auto with_float = io::load_dataset(tmp / "set");
  EXPECT_EQ(with_float.images.scalar_type(), torch::kFloat);
  io::write_dataset_folder(with_float, tmp / "float_set");
  EXPECT_TRUE(std::filesystem::exists(tmp / "float_set" / "images" / "c0.nii.gz"));
  EXPECT_TRUE(torch::equal(io::load_dataset(tmp / "float_set").images, with_float.images));
}

TEST(DatasetIo, LoadsTheRealJsrtData) {
  SEG_REQUIRE_JSRT(dir);
  auto data = io::load_dataset(dir);
  EXPECT_EQ(data.size(), 247);
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{247, 256, 256}));
  EXPECT_EQ(data.images.scalar_type(), torch::kByte);
  EXPECT_EQ(data.labels.max().item<int>(), 5);
  EXPECT_EQ(data.split_indices("train").size(), 160u);
  auto direct = io::read_label_map(dir / "labels" / "JPCNN009.png");
  const auto row = data.split_indices("test")[2];
  EXPECT_TRUE(torch::equal(data.labels[row], direct.pixels));
}

// dataset.json's "size" is what every case is resampled to: past the pixel cap it is refused
// before any case is read, as a file declaring that size would be.
TEST(DatasetIo, AStatedSizePastThePixelCapIsRefused) {
  ScratchDir tmp;
  io::write_dataset_folder(small_dataset(), tmp / "set");
  auto spec = nlohmann::json::parse(seg::read_file(tmp / "set" / "dataset.json"));
  spec["size"] = {9000, 9000};
  seg::write_file_atomically(tmp / "set" / "dataset.json", spec.dump());
  const std::string message = error_of([&] { io::load_dataset(tmp / "set"); });
  EXPECT_TRUE(contains(message, "asks for cases of 9000 x 9000 pixels, more than the limit")) << message;
}
