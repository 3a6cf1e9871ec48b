#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "test_support.h"

using seg::testing::ScratchDir;

TEST(DatasetSpec, ReadsTheRealJsrtDescription) {
  SEG_REQUIRE_JSRT(dir);
  auto spec = seg::DatasetSpec::read(dir / "dataset.json");
  EXPECT_EQ(spec.cases.size(), 247u);
  EXPECT_EQ(spec.splits.at("train").size(), 160u);
  EXPECT_EQ(spec.splits.at("test").size(), 87u);
  EXPECT_EQ(spec.classes.size(), 6);
  EXPECT_EQ(spec.classes.name_of(3), "heart");
  EXPECT_EQ(spec.image_path(dir, "JPCLN001"), dir / "images/JPCLN001.png");
}

TEST(DatasetSpec, MalformedJsonNamesTheFile) {
  ScratchDir tmp;
  seg::write_file_atomically(tmp / "dataset.json", "{\"images\": ");
  try {
    seg::DatasetSpec::read(tmp / "dataset.json");
    FAIL() << "expected seg::Error";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("dataset.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos);
  }
}

TEST(DatasetSpec, RejectsDuplicateClassValuesAndMissingPattern) {
  ScratchDir tmp;
  seg::write_file_atomically(tmp / "a.json",
      R"({"images": "i/{case}.png", "classes": {"bg": 0, "x": 0}, "split": {"train": ["a"]}})");
  EXPECT_THROW(seg::DatasetSpec::read(tmp / "a.json"), seg::Error);
  seg::write_file_atomically(tmp / "b.json", R"({"classes": {"bg": 0}, "split": {"train": ["a"]}})");
  EXPECT_THROW(seg::DatasetSpec::read(tmp / "b.json"), seg::Error);
}

// Numbers are taken as written: a class value past 32 bits is not wrapped into 0..255 (heart
// 2^32 + 3 read as 3), nor a fractional size cut to whole pixels.
TEST(DatasetSpec, RefusesNumbersItWouldOtherwiseNarrow) {
  ScratchDir tmp;
  seg::write_file_atomically(tmp / "wide.json",
      R"({"images": "i/{case}.png", "classes": {"bg": 0, "heart": 4294967299}, "split": {"train": ["a"]}})");
  EXPECT_TRUE(seg::testing::contains(seg::testing::error_of([&] { seg::DatasetSpec::read(tmp / "wide.json"); }),
                                     "class \"heart\" has value 4294967299 outside 0..255"));
  seg::write_file_atomically(tmp / "size.json",
      R"({"images": "i/{case}.png", "size": [128.9, 64.2], "classes": {"bg": 0}, "split": {"train": ["a"]}})");
  EXPECT_TRUE(seg::testing::contains(seg::testing::error_of([&] { seg::DatasetSpec::read(tmp / "size.json"); }),
                                     "\"size\" must be [height, width] in whole pixels"));
}

static seg::Dataset tiny_dataset() {
  seg::Dataset d;
  d.name = "tiny";
  d.source = "memory";
  d.images = torch::randint(0, 256, {4, 8, 6}, torch::kByte);
  d.labels = torch::randint(0, 3, {4, 8, 6}, torch::kByte);
  d.cases = {"a", "b", "c", "d"};
  d.classes = seg::ClassTable::numbered(3);
  d.splits["train"] = {"a", "c"};
  d.splits["test"] = {"d", "b"};
  return d;
}

TEST(TensorPack, RoundTripKeepsEverything) {
  ScratchDir tmp;
  auto d = tiny_dataset();
  seg::save_tensor_pack(d, tmp / "pack.pth");
  auto back = seg::load_tensor_pack(tmp / "pack.pth");
  EXPECT_TRUE(torch::equal(back.images, d.images));
  EXPECT_TRUE(torch::equal(back.labels, d.labels));
  EXPECT_EQ(back.cases, d.cases);
  EXPECT_EQ(back.classes.entries, d.classes.entries);
  EXPECT_EQ(back.splits, d.splits);
  auto test = back.subset("test");
  EXPECT_EQ(test.cases, (std::vector<std::string>{"d", "b"}));
  EXPECT_TRUE(torch::equal(test.images[1], d.images[1]));
}

TEST(TensorPack, RejectsLabelsOutsideTheClassTable) {
  ScratchDir tmp;
  auto d = tiny_dataset();
  d.labels[0][0][0] = 7;
  EXPECT_THROW(seg::save_tensor_pack(d, tmp / "pack.pth"), seg::Error);
  EXPECT_TRUE(seg::testing::list_files(tmp.path()).empty());
}

TEST(TensorPack, RefusesACaseIdGivenTwiceNamingIt) {
  ScratchDir tmp;
  auto d = tiny_dataset();
  d.cases[2] = d.cases[0];
  try {
    seg::save_tensor_pack(d, tmp / "pack.pth");
    FAIL() << "a repeated case ID was saved";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("case ID \"" + d.cases[0] + "\" is given twice"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(seg::testing::list_files(tmp.path()).empty());
}

TEST(TensorPack, TruncatedFileIsAClearError) {
  ScratchDir tmp;
  seg::save_tensor_pack(tiny_dataset(), tmp / "pack.pth");
  auto bytes = seg::read_file(tmp / "pack.pth");
  seg::write_file_atomically(tmp / "cut.pth", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(seg::load_tensor_pack(tmp / "cut.pth"), seg::Error);
}
