// seg-convert, run in-process.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <sstream>

#include "fixtures.h"
#include "python_support.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

using seg::testing::contains;
using seg::testing::list_files;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

auto convert(const seg::tools::Args& args) { return seg::testing::run_tool_in_process(seg::tools::convert, args); }

// A small untrained fcn model of three classes at 32 x 32.
seg::Model small_fcn_model() {
  seg::Model model;
  model.info.network = {"fcn", 1, 3};
  model.info.classes = seg::ClassTable::numbered(3);
  model.info.input_size = {32, 32};
  model.net = seg::make_network(model.info.network);
  return model;
}
int64_t lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

seg::Dataset small_dataset() { return seg::testing::random_dataset("small", 4, 16, 12, 4, 3); }

void expect_same(const seg::Dataset& a, const seg::Dataset& b) {
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_EQ(a.cases, b.cases);
  EXPECT_EQ(a.splits, b.splits);
  EXPECT_EQ(a.classes.entries, b.classes.entries);
}

}  // namespace

TEST(Convert, LabelMapThroughNiftiAndBackIsExact) {
  ScratchDir tmp;
  seg::Image labels;
  labels.pixels = torch::randint(0, 6, {20, 30}, torch::kByte);
  io::write_label_map(tmp / "l.png", labels);
  auto r = convert({"--labels", (tmp / "l.png").string(), "-o", (tmp / "l.nii.gz").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  r = convert({"--labels", (tmp / "l.nii.gz").string(), "-o", (tmp / "back.png").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(torch::equal(io::read_label_map(tmp / "back.png").pixels, labels.pixels));
  // Resampled labels stay labels: nearest neighbour, no new values.
  r = convert({"--labels", (tmp / "l.png").string(), "-o", (tmp / "small.png").string(), "--size", "10x15"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto small = io::read_label_map(tmp / "small.png").pixels;
  EXPECT_EQ(small.sizes(), (std::vector<int64_t>{10, 15}));
  EXPECT_TRUE(torch::equal(small, labels.pixels.slice(0, 1, 20, 2).slice(1, 1, 30, 2)));
}

TEST(Convert, ColourNeedsGrayAndFailureLeavesNothing) {
  SEG_REQUIRE_PYTHON("PIL, numpy");
  ScratchDir tmp;
  ASSERT_TRUE(seg::testing::run_python(R"(
from PIL import Image
import numpy as np
a = np.zeros((6, 5, 3), np.uint8); a[..., 0] = 250
Image.fromarray(a, 'RGB').save(')" + (tmp / "in" / "colour.png").string() + "')\n",
                                       (std::filesystem::create_directories(tmp / "in"), tmp.path())));
  auto r = convert({(tmp / "in" / "colour.png").string(), "-o", (tmp / "out" / "x.nii.gz").string()});
  std::filesystem::create_directories(tmp / "out");
  r = convert({(tmp / "in" / "colour.png").string(), "-o", (tmp / "out" / "x.nii.gz").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_TRUE(contains(r.err, "seg-convert: error: ") && contains(r.err, "colour.png") && contains(r.err, "--gray")) << r.err;
  EXPECT_TRUE(list_files(tmp / "out").empty());
  // Into a folder: nothing of the folder appears either.
  r = convert({(tmp / "in").string(), "-o", (tmp / "out" / "folder").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(std::filesystem::exists(tmp / "out" / "folder"));
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "out")) << list_files(tmp / "out").size();
  r = convert({"--gray", (tmp / "in" / "colour.png").string(), "-o", (tmp / "out" / "x.nii.gz").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(io::read_image(tmp / "out" / "x.nii.gz").pixels[0][0].item<int>(), 75);  // 0.299 * 250
}

TEST(Convert, DatasetFolderToPackAndBack) {
  ScratchDir tmp;
  auto d = small_dataset();
  io::write_dataset_folder(d, tmp / "set");
  auto r = convert({(tmp / "set").string(), "-o", (tmp / "set.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "4 cases")) << r.out;
  expect_same(seg::load_tensor_pack(tmp / "set.pth"), d);
  r = convert({(tmp / "set.pth").string(), "-o", (tmp / "again").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same(io::load_dataset(tmp / "again"), d);
  // An existing output is kept unless --overwrite.
  r = convert({(tmp / "set.pth").string(), "-o", (tmp / "again").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "--overwrite")) << r.err;
  r = convert({(tmp / "set.pth").string(), "-o", (tmp / "again").string(), "--overwrite", "--size", "8x6"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(io::load_dataset(tmp / "again").images.sizes(), (std::vector<int64_t>{4, 8, 6}));
}

// scripts/device/pack_pngs.py makes packs on the GPU machine, which has no seg-convert: its
// packs must be what seg-convert writes, tensor for tensor and name for name.
TEST(Convert, PythonPackerForTheGpuMachineWritesWhatSegConvertWrites) {
  SEG_REQUIRE_PYTHON("torch, PIL, numpy");
  ScratchDir tmp;
  const auto d = small_dataset();
  io::write_dataset_folder(d, tmp / "set");
  auto r = convert({(tmp / "set").string(), "-o", (tmp / "ours.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string command = std::string(seg::testing::kSystemPython) + " " + SEG_SOURCE_DIR +
                              "/scripts/device/pack_pngs.py " + (tmp / "set" / "dataset.json").string() + " " +
                              (tmp / "python.pth").string() + " > " + (tmp / "log").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << seg::read_file(tmp / "log");
  const auto packed = seg::load_tensor_pack(tmp / "python.pth");
  expect_same(packed, seg::load_tensor_pack(tmp / "ours.pth"));
  expect_same(packed, d);
  EXPECT_EQ(packed.name, d.name);
}

TEST(Convert, BadDatasetNamesTheFileAndWritesNothing) {
  ScratchDir tmp;
  io::write_dataset_folder(small_dataset(), tmp / "set");
  seg::Image bad;
  bad.pixels = torch::full({16, 12}, 9, torch::kByte);
  io::write_label_map(tmp / "set" / "labels" / "c.png", bad);
  std::filesystem::create_directories(tmp / "out");
  auto r = convert({(tmp / "set").string(), "-o", (tmp / "out" / "copy").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_TRUE(contains(r.err, (tmp / "set" / "labels" / "c.png").string()) && contains(r.err, "9")) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "out"));
  r = convert({(tmp / "set").string(), "-o", (tmp / "out" / "copy.pth").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "out"));
}

TEST(Convert, FolderOfImagesToNifti) {
  ScratchDir tmp;
  std::filesystem::create_directories(tmp / "in");
  std::vector<at::Tensor> originals;
  for (const std::string name : {"x1", "x2"}) {
    seg::Image image;
    image.pixels = torch::randint(0, 256, {8, 8}, torch::kByte);
    io::write_image(tmp / "in" / (name + ".png"), image);
    originals.push_back(image.pixels);
  }
  seg::write_file_atomically(tmp / "in" / "notes.txt", "not an image");
  auto r = convert({(tmp / "in").string(), "-o", (tmp / "out").string(), "--format", "nii.gz"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(list_files(tmp / "out"), (std::vector<std::string>{"x1.nii.gz", "x2.nii.gz"}));
  EXPECT_TRUE(torch::equal(io::read_image(tmp / "out" / "x2.nii.gz").pixels, originals[1]));
}

TEST(Convert, UsageErrorsExitWithTwo) {
  ScratchDir tmp;
  EXPECT_EQ(convert({"--notebook", "a.pth", "-o", (tmp / "o").string()}).code, 2);
  EXPECT_EQ(convert({"a.png"}).code, 2);  // no -o
  EXPECT_EQ(convert({"a.png", "-o", "b.png", "--size", "big"}).code, 2);
  EXPECT_EQ(convert({"--help"}).code, 0);
  const auto missing = convert({(tmp / "nothing.png").string(), "-o", (tmp / "b.png").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(contains(missing.err, "nothing.png")) << missing.err;
}

TEST(Convert, NotebookFilesIntoAPackReproduceTheLabels) {
  SEG_REQUIRE_PYTHON("torch");
  ScratchDir tmp;
  ASSERT_TRUE(seg::testing::run_python(R"(
import torch
torch.manual_seed(3)
imgs = torch.randn(5, 8, 8)
onehot = (torch.rand(5, 5, 8, 8) > 0.6).float()
seg = torch.zeros(5, 8, 8).long()
for channel in range(5):
    seg[onehot[:, channel] == 1] = channel + 1
torch.save({'JSRT_img0': imgs}, ')" + (tmp / "img.pth").string() + R"(')
torch.save(onehot, ')" + (tmp / "masks.pth").string() + R"(')
torch.save(seg.to(torch.uint8), ')" + (tmp / "expected.pth").string() + R"(')
)", tmp.path()));
  auto r = convert({"--notebook", (tmp / "img.pth").string(), (tmp / "masks.pth").string(), "-o",
                    (tmp / "nb.pth").string(), "--train-count", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto pack = seg::load_tensor_pack(tmp / "nb.pth");
  const auto bytes = seg::read_file(tmp / "expected.pth");
  const auto expected = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toTensor();
  EXPECT_TRUE(torch::equal(pack.labels, expected));
  EXPECT_EQ(pack.splits.at("train").size(), 3u);
  // And out again as the notebook's files.
  r = convert({(tmp / "nb.pth").string(), "--to-notebook", "-o", (tmp / "nb").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(list_files(tmp / "nb"), (std::vector<std::string>{"JSRT_img0_lms.pth", "jsrt_seg_masks.pth"}));
}

TEST(Convert, JsrtErrorsNameTheMissingFolder) {
  ScratchDir tmp;
  std::filesystem::create_directories(tmp / "raw");
  std::filesystem::create_directories(tmp / "masks");
  seg::write_file_atomically(tmp / "raw" / "JPCLN001.IMG", std::string(2 * 16 * 16, '\0'));
  auto r = convert({"--jsrt", (tmp / "raw").string(), (tmp / "masks").string(), "-o", (tmp / "out").string(),
                    "--raw-size", "16", "--size", "4"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "right lung")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "out"));
}

TEST(Convert, RealJsrtToPackKeepsEveryCase) {
  SEG_REQUIRE_JSRT(dir);
  ScratchDir tmp;
  auto r = convert({dir.string(), "-o", (tmp / "jsrt.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  auto pack = seg::load_tensor_pack(tmp / "jsrt.pth");
  EXPECT_EQ(pack.size(), 247);
  EXPECT_EQ(pack.cases.front(), "JPCLN001");  // the canonical order, train first
  EXPECT_EQ(pack.splits.at("test").size(), 87u);
  EXPECT_TRUE(torch::equal(pack.labels[246], io::read_label_map(dir / "labels" / "JPCNN093.png").pixels));
  EXPECT_TRUE(torch::equal(pack.images[0], io::read_image(dir / "images" / "JPCLN001.png").pixels));
}

// A model rewritten with float16 weights and back: its metadata travels, inspect names the
// precision, an existing output is kept unless --overwrite, a non-.pth output is refused.
TEST(Convert, ModelToHalfPrecisionAndBack) {
  ScratchDir tmp;
  auto model = small_fcn_model();
  model.info.postprocessing = {"largest-component"};
  std::filesystem::create_directories(tmp / "run");
  seg::save_model(model, tmp / "run/model.pth");

  auto r = convert({(tmp / "run").string(), "-o", (tmp / "half.pth").string(), "--half"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "float16")) << r.out;
  const auto half = seg::load_model(tmp / "half.pth");
  EXPECT_EQ(half.stored_as, seg::WeightPrecision::float16);
  EXPECT_EQ(half.info.postprocessing, model.info.postprocessing);
  const auto inspect = seg::testing::run_tool_in_process(seg::tools::inspect, {(tmp / "half.pth").string()});
  EXPECT_TRUE(contains(inspect.out, "stored as float16")) << inspect.out;

  const auto before = seg::read_file(tmp / "half.pth");
  r = convert({(tmp / "half.pth").string(), "-o", (tmp / "half.pth").string(), "--overwrite"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "is an input of this run")) << r.err;
  EXPECT_EQ(seg::read_file(tmp / "half.pth"), before);
  r = convert({(tmp / "half.pth").string(), "-o", (tmp / "full.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(seg::load_model(tmp / "full.pth").stored_as, seg::WeightPrecision::float32);

  r = convert({(tmp / "run/model.pth").string(), "-o", (tmp / "model.png").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, ".pth")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "model.png"));
  // Options of images and data sets would be silently dropped: they are a usage error.
  r = convert({(tmp / "run").string(), "-o", (tmp / "small.pth").string(), "--size", "16"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "not to a model")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "small.pth"));
}

// A model trained before seg-train recorded its framing gets it from its training data: the
// median margins of the train split's labels (the test split's are not looked at). Data with
// another class table, or the option on anything but a model, write nothing.
TEST(Convert, ModelGainsTheFramingOfItsTrainingData) {
  ScratchDir tmp;
  seg::save_model(small_fcn_model(), tmp / "old.pth");
  auto data = seg::testing::random_dataset("boxes", 3, 40, 40, 3, 2);
  data.labels.zero_();
  using torch::indexing::Slice;
  data.labels.index_put_({0, Slice(10, 30), Slice(8, 28)}, 1);   // margins 0.5, 0.5, 0.4, 0.6
  data.labels.index_put_({1, Slice(4, 24), Slice(16, 36)}, 2);   // margins 0.2, 0.8, 0.8, 0.2
  data.labels.index_put_({2, Slice(0, 2), Slice(0, 2)}, 1);      // test split: left out
  seg::save_tensor_pack(data, tmp / "boxes.pth");

  auto r = convert({(tmp / "old.pth").string(), "-o", (tmp / "framed.pth").string(), "--framing-from",
                    (tmp / "boxes.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "framing")) << r.out;
  const auto framing = seg::load_model(tmp / "framed.pth").info.framing;
  ASSERT_TRUE(framing.has_value());
  EXPECT_DOUBLE_EQ(framing->top, 0.35);
  EXPECT_DOUBLE_EQ(framing->bottom, 0.65);
  EXPECT_DOUBLE_EQ(framing->left, 0.6);
  EXPECT_DOUBLE_EQ(framing->right, 0.4);
  const auto inspect = seg::testing::run_tool_in_process(seg::tools::inspect, {(tmp / "framed.pth").string()});
  EXPECT_TRUE(contains(inspect.out, "top 0.350, bottom 0.650, left 0.600, right 0.400")) << inspect.out;

  seg::save_tensor_pack(seg::testing::random_dataset("four", 3, 40, 40, 4, 2), tmp / "four.pth");
  r = convert({(tmp / "old.pth").string(), "-o", (tmp / "other.pth").string(), "--framing-from",
               (tmp / "four.pth").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "class table")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "other.pth"));
  r = convert({(tmp / "boxes.pth").string(), "-o", (tmp / "copy.pth").string(), "--framing-from",
               (tmp / "boxes.pth").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--framing-from")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "copy.pth"));
}

// seg-convert --overlap records which structures a model's training labels drew over others,
// by name or value; a class the model lacks, a structure over itself, a malformed pair, or the
// option on anything but a model write nothing.
TEST(Convert, ModelRecordsTheStructuresItsLabelsDrewOver) {
  ScratchDir tmp;
  seg::save_model(small_fcn_model(), tmp / "old.pth");
  auto r = convert({(tmp / "old.pth").string(), "-o", (tmp / "new.pth").string(), "--overlap", "label_1:2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "label_1 under label_2")) << r.out;
  const auto overlaps = seg::load_model(tmp / "new.pth").info.overlaps;
  ASSERT_EQ(overlaps.size(), 1u);
  EXPECT_EQ(std::make_pair(overlaps[0].under, overlaps[0].over), std::make_pair(1, 2));
  const auto inspect = seg::testing::run_tool_in_process(seg::tools::inspect, {(tmp / "new.pth").string()});
  EXPECT_TRUE(contains(inspect.out, "label_1 under label_2")) << inspect.out;

  for (const auto& [pair, code] : std::vector<std::pair<std::string, int>>{{"lung:2", 2}, {"1:1", 1}, {"1", 2}, {"0:1", 1}}) {
    r = convert({(tmp / "old.pth").string(), "-o", (tmp / "bad.pth").string(), "--overlap", pair});
    EXPECT_EQ(r.code, code) << pair << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "--overlap")) << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp / "bad.pth")) << pair;
  }
  seg::save_tensor_pack(small_dataset(), tmp / "data.pth");
  r = convert({(tmp / "data.pth").string(), "-o", (tmp / "copy.pth").string(), "--overlap", "1:2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(std::filesystem::exists(tmp / "copy.pth"));
}

// A data set or the notebook's files written over the folder they are read from would replace
// the inputs mid-read: refused even with --overwrite, the inputs untouched.
TEST(Convert, NeverReplacesTheFolderItReadsFrom) {
  ScratchDir tmp;
  io::write_dataset_folder(small_dataset(), tmp / "set");
  const std::string before = seg::read_file(tmp / "set" / "dataset.json");
  auto r = convert({(tmp / "set" / "dataset.json").string(), "-o", (tmp / "set").string(), "--overwrite", "--size", "8x6"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "is an input of this run")) << r.err;
  EXPECT_EQ(seg::read_file(tmp / "set" / "dataset.json"), before);
  ASSERT_EQ(convert({(tmp / "set").string(), "-o", (tmp / "nb").string(), "--to-notebook"}).code, 0);
  const std::string images = seg::read_file(tmp / "nb" / "JSRT_img0_lms.pth");
  r = convert({"--notebook", (tmp / "nb" / "JSRT_img0_lms.pth").string(), (tmp / "nb" / "jsrt_seg_masks.pth").string(),
               "--train-count", "2", "--to-notebook", "-o", (tmp / "nb").string(), "--overwrite", "--size", "8x6"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "holds an input of this run")) << r.err;
  EXPECT_EQ(seg::read_file(tmp / "nb" / "JSRT_img0_lms.pth"), images);
}

// Formats that cannot hold what is asked are refused before anything is written: a header with
// a second data file (written whole only as one file), JPEG for label maps (lossy).
TEST(Convert, RefusesOutputFormatsThatCannotHoldTheResult) {
  ScratchDir tmp;
  io::write_label_map(tmp / "labels.png", seg::Image{torch::randint(0, 3, {8, 8}, torch::kByte), {}, "uint8"});
  for (const char* name : {"a.mhd", "a.nhdr"}) {
    const auto r = convert({(tmp / "labels.png").string(), "-o", (tmp / name).string()});
    EXPECT_EQ(r.code, 2) << name;
    EXPECT_TRUE(contains(r.err, "write .mha or .nrrd")) << r.err;
  }
  const auto r = convert({"--labels", (tmp / "labels.png").string(), "-o", (tmp / "labels.jpg").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "JPEG is lossy")) << r.err;
  EXPECT_EQ(list_files(tmp.path()), std::vector<std::string>{"labels.png"});
}
