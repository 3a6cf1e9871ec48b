// seg-convert's conversions (io/conversion.h), without the tool: what they write, what they
// refuse, and that nothing is half written.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/conversion.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/state_dict.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "small_model.h"
#include "test_support.h"

using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::list_files;
using seg::testing::ScratchDir;
namespace fs = std::filesystem;
namespace io = seg::io;

namespace {

io::ConversionOutput output_to(const fs::path& path, seg::Existing existing = seg::Existing::refuse) {
  return {path, {}, existing, "pass --replace"};
}

void expect_same(const seg::Dataset& a, const seg::Dataset& b) {
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_EQ(a.cases, b.cases);
  EXPECT_EQ(a.splits, b.splits);
  EXPECT_EQ(a.classes.entries, b.classes.entries);
}

}  // namespace

TEST(Conversion, DatasetToPackToFolderAndBackIsExact) {
  ScratchDir tmp;
  const auto d = seg::testing::random_dataset("small", 4, 16, 12, 4, 3);
  auto said = io::write_dataset(d, output_to(tmp / "set.pth"), {});
  EXPECT_EQ(said, "wrote tensor pack " + (tmp / "set.pth").string() + ": 4 cases of 16x12 (height x width), 4 classes\n");
  expect_same(seg::load_tensor_pack(tmp / "set.pth"), d);

  io::DatasetWrite renamed;
  renamed.name = "renamed";
  renamed.extension = ".nii.gz";
  said = io::write_dataset(seg::load_tensor_pack(tmp / "set.pth"), output_to(tmp / "folder"), renamed);
  EXPECT_TRUE(contains(said, "uint8 images as .nii.gz, label maps as .nii.gz\nno spacing in the sources: 1 x 1 mm assumed\n")) << said;
  const auto back = io::load_dataset(tmp / "folder");
  expect_same(back, d);
  EXPECT_EQ(back.name, "renamed");

  io::DatasetWrite notebook;
  notebook.notebook_files = true;
  io::write_dataset(back, output_to(tmp / "notebook"), notebook);
  EXPECT_EQ(list_files(tmp / "notebook"), (std::vector<std::string>{"JSRT_img0_lms.pth", "jsrt_seg_masks.pth"}));
  const auto imported = io::import_notebook_files(tmp / "notebook" / "JSRT_img0_lms.pth", tmp / "notebook" / "jsrt_seg_masks.pth", 3);
  EXPECT_TRUE(torch::equal(imported.labels, d.labels));
}

TEST(Conversion, ExistingOutputsAreKeptUnlessReplacingIsAsked) {
  ScratchDir tmp;
  const auto d = seg::testing::random_dataset("small", 3, 8, 8, 3, 2);
  io::write_dataset(d, output_to(tmp / "set.pth"), {});
  io::write_dataset(d, output_to(tmp / "folder"), {});
  const auto before = seg::read_file(tmp / "set.pth");
  // The refusal ends with the caller's words, and says only what to choose without them.
  EXPECT_EQ(error_of([&] { io::write_dataset(d, output_to(tmp / "set.pth"), {}); }),
            (tmp / "set.pth").string() + ": exists; choose another name or pass --replace");
  EXPECT_EQ(error_of([&] { io::write_dataset(d, {tmp / "set.pth", {}, seg::Existing::refuse, ""}, {}); }),
            (tmp / "set.pth").string() + ": exists; choose another name");
  EXPECT_EQ(error_of([&] { io::write_dataset(d, output_to(tmp / "folder"), {}); }),
            (tmp / "folder").string() + ": exists and is not empty; choose a new folder or pass --replace");
  EXPECT_EQ(seg::read_file(tmp / "set.pth"), before);
  // An input is never an output, even when replacing is asked.
  auto onto_input = output_to(tmp / "set.pth", seg::Existing::overwrite);
  onto_input.inputs.add(tmp / "set.pth");
  EXPECT_TRUE(contains(error_of([&] { io::write_dataset(d, onto_input, {}); }), "is an input of this run"));
  auto renamed = d;
  renamed.name = "again";
  io::write_dataset(renamed, output_to(tmp / "set.pth", seg::Existing::overwrite), {});
  EXPECT_EQ(seg::load_tensor_pack(tmp / "set.pth").name, "again");
}

TEST(Conversion, ImagesIntoAFolderAreCheckedBeforeAnyIsWritten) {
  ScratchDir tmp;
  const auto first = seg::testing::image_of(torch::randint(0, 4, {6, 5}, torch::kByte), "uint8");
  const auto second = seg::testing::image_of(torch::randint(0, 4, {6, 5}, torch::kByte), "uint8");
  fs::create_directories(tmp / "in");
  fs::create_directories(tmp / "other");
  io::write_label_map(tmp / "in" / "x.png", first);
  io::write_label_map(tmp / "in" / "y.png", second);
  io::write_label_map(tmp / "other" / "x.png", second);
  io::ImageConversion labels;
  labels.labels = true;
  labels.size = std::make_pair(int64_t{3}, int64_t{5});

  const auto files = io::image_files({tmp / "in"});
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(io::convert_image_files(files, ".nii.gz", output_to(tmp / "out"), labels),
            "wrote 2 label maps into " + (tmp / "out").string() + "\n");
  EXPECT_EQ(list_files(tmp / "out"), (std::vector<std::string>{"x.nii.gz", "y.nii.gz"}));
  EXPECT_TRUE(torch::equal(io::read_label_map(tmp / "out" / "y.nii.gz").pixels, second.pixels.slice(0, 1, 6, 2)));

  // Two inputs of case x, or an output that exists: nothing is written.
  const auto twice = io::image_files({tmp / "in", tmp / "other"});
  EXPECT_TRUE(contains(error_of([&] { io::convert_image_files(twice, ".png", output_to(tmp / "fresh"), labels); }),
                       "has the same name as another input (x)"));
  EXPECT_FALSE(fs::exists(tmp / "fresh"));
  EXPECT_EQ(error_of([&] { io::convert_image_files(files, ".nii.gz", output_to(tmp / "out"), labels); }),
            (tmp / "out" / "x.nii.gz").string() + ": exists (and 1 more outputs of this run); pass --replace to replace them");
  EXPECT_EQ(error_of([&] { io::image_files({tmp / "none"}); }), (tmp / "none").string() + ": no such file or folder; check the path");

  EXPECT_EQ(io::convert_image_file(tmp / "in" / "x.png", output_to(tmp / "x.nii.gz"), {}), "wrote " + (tmp / "x.nii.gz").string() + "\n");
  EXPECT_TRUE(torch::equal(io::read_image(tmp / "x.nii.gz").pixels, first.pixels));
}

TEST(Conversion, ModelRewrittenInHalfPrecisionWithFramingAndOverlaps) {
  ScratchDir tmp;
  const auto original = seg::testing::small_model(4);
  fs::create_directories(tmp / "run");
  seg::save_model(original, tmp / "run" / "model.pth");
  auto data = seg::testing::random_dataset("boxes", 2, 40, 40, 3, 1);
  data.labels.zero_();
  data.labels[0].slice(0, 10, 30).slice(1, 8, 28).fill_(1);  // margins 0.5, 0.5, 0.4, 0.6 of the box
  seg::save_tensor_pack(data, tmp / "boxes.pth");

  io::ModelRewrite how;
  how.precision = seg::WeightPrecision::float16;
  how.framing_data = tmp / "boxes.pth";
  how.overlaps = [](const seg::ClassTable& classes) {
    EXPECT_EQ(classes.size(), 3);
    return std::vector<seg::Overlap>{{1, 2}};
  };
  const auto said = io::rewrite_model(tmp / "run", output_to(tmp / "half.pth"), how);
  EXPECT_TRUE(contains(said, "weights in float16 with their SHA-256")) << said;
  EXPECT_TRUE(contains(said, "; framing top 0.5, bottom 0.5, left 0.4, right 0.6; label_1 under label_2)\n")) << said;
  const auto half = seg::load_model(tmp / "half.pth");
  EXPECT_EQ(half.stored_as, seg::WeightPrecision::float16);
  ASSERT_TRUE(half.info.framing.has_value());
  EXPECT_DOUBLE_EQ(half.info.framing->left, 0.4);
  ASSERT_EQ(half.info.overlaps.size(), 1u);
  EXPECT_EQ(half.info.overlaps[0].over, 2);

  // Data of another class table, a name that is not .pth, the model file itself: nothing written.
  seg::save_tensor_pack(seg::testing::random_dataset("four", 2, 8, 8, 4, 1), tmp / "four.pth");
  io::ModelRewrite other;
  other.framing_data = tmp / "four.pth";
  EXPECT_TRUE(contains(error_of([&] { io::rewrite_model(tmp / "run", output_to(tmp / "other.pth"), other); }), "another class table"));
  EXPECT_EQ(error_of([&] { io::rewrite_model(tmp / "run", output_to(tmp / "model.png"), {}); }),
            (tmp / "model.png").string() + ": a model is written as a .pth file; name it OUT.pth");
  EXPECT_TRUE(contains(error_of([&] { io::rewrite_model(tmp / "run", output_to(tmp / "run" / "model.pth", seg::Existing::overwrite), {}); }),
                       "is an input of this run"));
  EXPECT_FALSE(fs::exists(tmp / "other.pth"));
  EXPECT_FALSE(fs::exists(tmp / "model.png"));
}

TEST(Conversion, WeightsExportedAndImportedAgainAreTheSame) {
  ScratchDir tmp;
  const auto original = seg::testing::small_model(5);
  seg::save_model(original, tmp / "model.pth");
  const auto exported = io::export_weights(tmp / "model.pth", output_to(tmp / "weights.pt"));
  EXPECT_TRUE(contains(exported, "wrote state_dict " + (tmp / "weights.pt").string() + " (fcn, ")) << exported;
  EXPECT_TRUE(contains(exported, "named as the course notebook names them")) << exported;

  seg::save_tensor_pack(seg::testing::random_dataset("data", 3, 32, 32, 3, 2), tmp / "data.pth");
  io::WeightsImport how;
  how.data = tmp / "data.pth";
  how.how.architecture = "fcn";
  how.how.normalization = seg::Normalization{"dataset", 100.0, 20.0};
  const auto imported = io::import_weights(tmp / "weights.pt", output_to(tmp / "again.pth"), how);
  EXPECT_TRUE(contains(imported, "3 classes and input size 32x32 from " + (tmp / "data.pth").string() +
                                     "; normalization dataset mean 100 std 20; weights in float32)\n"))
      << imported;
  const auto again = seg::load_model(tmp / "again.pth");
  const auto a = seg::python_state_dict(original), b = seg::python_state_dict(again);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  EXPECT_EQ(error_of([&] { io::export_weights(tmp / "model.pth", output_to(tmp / "weights.npy")); }),
            (tmp / "weights.npy").string() + ": a state_dict is written as a .pt or .pth file; name it WEIGHTS.pt");
}
