// seg-segment --format dcm: a DICOM SEG for every DICOM film, valid (dciodvfy), equal to the
// PNG label map of the same run, scored by seg-evaluate and described by seg-inspect; inputs
// that are not DICOM films are refused before anything is written, and a full disk leaves no file.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <torch/torch.h>

#include <dcmtk/dcmdata/dcdeftag.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>

#include "dicom_film.h"
#include "dicom_validator.h"
#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
namespace io = seg::io;
using nlohmann::json;
using seg::testing::contains;
using seg::testing::list_files;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

namespace {

std::string s(const fs::path& p) { return p.string(); }

// The algorithm parameters and version a DICOM SEG records for its first segment.
std::pair<std::string, std::string> algorithm_of(const fs::path& path) {
  DcmFileFormat file;
  EXPECT_TRUE(file.loadFile(path.c_str()).good());
  DcmItem* segment = nullptr;
  DcmItem* algorithm = nullptr;
  OFString parameters, version;
  if (file.getDataset()->findAndGetSequenceItem(DCM_SegmentSequence, segment, 0).good() &&
      segment->findAndGetSequenceItem(DCM_SegmentationAlgorithmIdentificationSequence, algorithm, 0).good()) {
    algorithm->findAndGetOFString(DCM_AlgorithmParameters, parameters);
    algorithm->findAndGetOFString(DCM_AlgorithmVersion, version);
  }
  return {parameters.c_str(), version.c_str()};
}

}  // namespace

// A tiny network with the JSRT class table, two DICOM films (with and without a Frame of
// Reference) and a PNG film.
class DicomSegOutput : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(11);
    torch::set_num_threads(1);
    seg::Model model;
    model.info.network = {"fcn", 1, 6};
    model.info.classes = {{{"background", 0}, {"right_lung", 1}, {"left_lung", 2}, {"heart", 3},
                           {"right_clavicle", 4}, {"left_clavicle", 5}}};
    model.info.input_size = {16, 16};
    model.info.normalization = {"dataset", 2000, 1000};
    model.net = seg::make_network(model.info.network);
    seg::save_model(model, dir_ / "model.pth");
    fs::create_directories(dir_ / "films");
    seg::testing::write_pacs_film(dir_ / "films/a.dcm", torch::randint(0, 4096, {40, 32}, torch::kInt), true);
    seg::testing::write_pacs_film(dir_ / "films/b.dcm", torch::randint(0, 4096, {36, 36}, torch::kInt), false);
    // Two films of one series need their own instance UIDs.
    seg::testing::edit_dicom(dir_ / "films/b.dcm", {{DCM_SOPInstanceUID, "1.2.826.0.1.3680043.2.1125.7.9"}});
    io::write_image(dir_ / "c.png", seg::testing::image_of(torch::randint(0, 256, {16, 16}, torch::kByte), "uint8"));
  }

  seg::testing::ToolResult segment(std::vector<std::string> extra) const {
    std::vector<std::string> args{"--model", s(dir_ / "model.pth"), "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_tool_in_process(seg::tools::segment, args);
  }

  ScratchDir dir_;
};

TEST_F(DicomSegOutput, WritesSegmentationsEqualToThePngRunThatScoreAndDescribeAlike) {
  const auto dcm = segment({s(dir_ / "films"), "-o", s(dir_ / "dcm"), "--format", "dcm"});
  ASSERT_EQ(dcm.code, 0) << dcm.err;
  EXPECT_EQ(list_files(dir_ / "dcm"), (std::vector<std::string>{"a.dcm", "b.dcm"}));
  const auto png = segment({s(dir_ / "films"), "-o", s(dir_ / "png")});
  ASSERT_EQ(png.code, 0) << png.err;
  for (const char* id : {"a", "b"}) {
    SCOPED_TRACE(id);
    const auto from_seg = io::read_label_map(dir_ / "dcm" / (std::string(id) + ".dcm"));
    const auto from_png = io::read_label_map(dir_ / "png" / (std::string(id) + ".png"));
    ASSERT_GE(std::get<0>(at::_unique(from_png.pixels)).numel(), 2) << "the tiny network drew one class only";
    EXPECT_TRUE(torch::equal(from_seg.pixels, from_png.pixels));
  }

  // The PACS round trip, scored: every structure present matches exactly.
  const auto scored = run_tool_in_process(seg::tools::evaluate, {s(dir_ / "dcm"), s(dir_ / "png"), "--json"});
  ASSERT_EQ(scored.code, 0) << scored.err;
  const auto report = json::parse(scored.out);
  ASSERT_EQ(report["cases"].size(), 2u);
  EXPECT_DOUBLE_EQ(report["mean_dice"].get<double>(), 1.0);

  // seg-inspect tells the same label map from either file.
  const auto seg_view = run_tool_in_process(seg::tools::inspect, {s(dir_ / "dcm/a.dcm"), "--labels", "--json"});
  const auto png_view = run_tool_in_process(seg::tools::inspect, {s(dir_ / "png/a.png"), "--labels", "--json"});
  ASSERT_EQ(seg_view.code, 0) << seg_view.err;
  ASSERT_EQ(png_view.code, 0) << png_view.err;
  const auto seg_json = json::parse(seg_view.out), png_json = json::parse(png_view.out);
  EXPECT_EQ(seg_json["kind"], "label map");
  EXPECT_EQ(seg_json["size"], png_json["size"]);
  EXPECT_EQ(seg_json["labels"], png_json["labels"]);

  // What made it: the model's file and the suite's version, as --version says it.
  const auto version = run_tool_in_process(seg::tools::segment, {"--version"});
  const auto [parameters, recorded_version] = algorithm_of(dir_ / "dcm/a.dcm");
  EXPECT_EQ(parameters, "model=model.pth");
  EXPECT_FALSE(recorded_version.empty());
  EXPECT_TRUE(contains(version.out, "seg-segment " + recorded_version)) << version.out;
}

TEST_F(DicomSegOutput, PassesDciodvfy) {
  SEG_REQUIRE_DCIODVFY();
  const auto r = segment({s(dir_ / "films"), "-o", s(dir_ / "dcm"), "--format", "dcm"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* name : {"a.dcm", "b.dcm"}) {
    const auto report = seg::testing::run_dciodvfy(dir_ / "dcm" / name, dir_.path());
    EXPECT_TRUE(report.errors.empty()) << name << ":\n" << report.text;
  }
}

TEST_F(DicomSegOutput, MasksBesideASegmentationAreNifti) {
  const auto r = segment({s(dir_ / "films/a.dcm"), "-o", s(dir_ / "out"), "--format", "dcm", "--masks"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(list_files(dir_ / "out"),
            (std::vector<std::string>{"a.dcm", "masks/a_heart.nii.gz", "masks/a_left_clavicle.nii.gz",
                                      "masks/a_left_lung.nii.gz", "masks/a_right_clavicle.nii.gz",
                                      "masks/a_right_lung.nii.gz"}));
}

TEST_F(DicomSegOutput, FullDiskGivesOneLineAndNoFile) {
  seg::fail_write_for_testing(1);
  const auto r = segment({s(dir_ / "films/a.dcm"), "-o", s(dir_ / "out"), "--format", "dcm"});
  seg::fail_write_for_testing(0);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "seg-segment: error: " + s(dir_ / "out/a.dcm") + ": ")) << r.err;
  EXPECT_TRUE(contains(r.err, "no space left on device")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(list_files(dir_ / "out").empty());
}

// Inputs --format dcm cannot answer: refused before anything is written, naming the input.
struct BadInput {
  const char* name;
  std::function<std::vector<std::string>(const fs::path& dir)> inputs;  // and how the films are changed
  int code;
  const char* message;
};

void PrintTo(const BadInput& bad, std::ostream* out) { *out << bad.name; }

class DicomSegOutputRefuses : public DicomSegOutput, public ::testing::WithParamInterface<BadInput> {};

TEST_P(DicomSegOutputRefuses, BeforeWritingAnything) {
  auto args = GetParam().inputs(dir_.path());
  args.insert(args.end(), {"-o", s(dir_ / "out"), "--format", "dcm"});
  const auto r = segment(args);
  EXPECT_EQ(r.code, GetParam().code) << r.err;
  EXPECT_TRUE(contains(r.err, GetParam().message)) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, DicomSegOutputRefuses,
    ::testing::Values(
        BadInput{"PngAfterADicomFilm",
                 [](const fs::path& d) { return std::vector<std::string>{s(d / "films/a.dcm"), s(d / "c.png")}; }, 2,
                 "c.png is not one; give DICOM films only, or use --format png or nii.gz"},
        BadInput{"TensorPackRow",
                 [](const fs::path& d) {
                   seg::save_tensor_pack(seg::testing::random_dataset("pack", 2, 16, 16, 3, 1), d / "pack.pth");
                   return std::vector<std::string>{"--data", s(d / "pack.pth")};
                 },
                 2, "case b is not one"},
        BadInput{"FilmWithoutSeriesUid",
                 [](const fs::path& d) {
                   seg::testing::edit_dicom(d / "films/b.dcm", {{DCM_SeriesInstanceUID, ""}});
                   return std::vector<std::string>{s(d / "films")};
                 },
                 1, "b.dcm: has no Series Instance UID (0020,000E)"}),
    [](const auto& info) { return std::string(info.param.name); });
