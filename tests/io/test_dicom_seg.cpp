// DICOM SEG out and back in: what write_dicom_segmentation writes is a valid Segmentation
// object (dciodvfy, pydicom), references its film, carries the anatomy's codes, and reads back
// as the same label map; bad films and damaged segmentations are refused with one line.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dicom_seg.h>
#include <seg/io/image_header.h>
#include <seg/io/image_io.h>
#include <torch/torch.h>

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <memory>

#include "dicom_film.h"
#include "dicom_validator.h"
#include "fixtures.h"
#include "python_support.h"
#include "test_support.h"

namespace fs = std::filesystem;
namespace io = seg::io;
using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::ScratchDir;

namespace {

seg::ClassTable jsrt_classes() {
  return {{{"background", 0}, {"right_lung", 1}, {"left_lung", 2}, {"heart", 3}, {"right_clavicle", 4}, {"left_clavicle", 5}}};
}

const io::SegmentationAlgorithm kAlgorithm{"segsuite", "0.1.0", "tiny.pth"};

// A label map of blocks, one per class value in `values`, on a background of 0.
seg::Image blocks(int64_t height, int64_t width, const std::vector<int>& values) {
  auto labels = torch::zeros({height, width}, torch::kByte);
  for (size_t k = 0; k < values.size(); ++k) {
    const int64_t top = static_cast<int64_t>(k) * height / static_cast<int64_t>(values.size());
    labels.slice(0, top, top + height / static_cast<int64_t>(values.size()) - 1).slice(1, 1 + static_cast<int64_t>(k), width - 1).fill_(values[k]);
  }
  return seg::testing::image_of(labels, "uint8");
}

at::Tensor film_pixels(int64_t height, int64_t width) { return torch::randint(0, 4096, {height, width}, torch::kInt); }

// A top-level text element of a DICOM file, "" when it is absent.
std::string element_of(const fs::path& path, const DcmTagKey& tag) {
  DcmFileFormat file;
  EXPECT_TRUE(file.loadFile(path.c_str()).good());
  OFString value;
  file.getDataset()->findAndGetOFStringArray(tag, value);
  return value.c_str();
}

// Loads a DICOM file, lets `edit` change its data set, and saves it in place.
template <typename Edit>
void edit_in_place(const fs::path& path, Edit edit) {
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(path.c_str()).good());
  edit(*file.getDataset());
  ASSERT_TRUE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
}

void set_segment_description(DcmDataset& data, unsigned long segment_index, const char* description) {
  DcmItem* item = nullptr;
  ASSERT_TRUE(data.findAndGetSequenceItem(DCM_SegmentSequence, item, static_cast<signed long>(segment_index)).good());
  ASSERT_TRUE(item->putAndInsertString(DCM_SegmentDescription, description).good());
}

}  // namespace

TEST(DicomSeg, ReadsBackAsTheLabelMapItWasWrittenFrom) {
  ScratchDir tmp;
  torch::manual_seed(1);
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(40, 24), true);
  const seg::Image labels = blocks(40, 24, {1, 2, 3, 4, 5});
  io::write_dicom_segmentation(tmp / "seg.dcm", labels, tmp / "film.dcm", jsrt_classes(), kAlgorithm);
  EXPECT_TRUE(io::is_dicom_segmentation(tmp / "seg.dcm"));
  EXPECT_FALSE(io::is_dicom_segmentation(tmp / "film.dcm"));
  const seg::Image back = io::read_label_map(tmp / "seg.dcm");
  ASSERT_EQ(back.pixels.sizes(), labels.pixels.sizes());
  EXPECT_TRUE(torch::equal(back.pixels, labels.pixels));
  EXPECT_TRUE(back.geometry.has_spacing);
  EXPECT_DOUBLE_EQ(back.geometry.spacing[0], 0.175);
  EXPECT_DOUBLE_EQ(back.geometry.origin[0], -120.0);
  EXPECT_DOUBLE_EQ(back.geometry.origin[1], -95.5);
}

// dciodvfy judges the object against the Segmentation IOD: a film with a Frame of Reference
// (position and orientation go into the segmentation) and a projection film without one.
class DicomSegValid : public ::testing::TestWithParam<bool> {};

TEST_P(DicomSegValid, PassesDciodvfy) {
  SEG_REQUIRE_DCIODVFY();
  ScratchDir tmp;
  torch::manual_seed(2);
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(32, 24), GetParam());
  io::write_dicom_segmentation(tmp / "seg.dcm", blocks(32, 24, {1, 2, 3, 4, 5}), tmp / "film.dcm", jsrt_classes(),
                               kAlgorithm);
  const auto report = seg::testing::run_dciodvfy(tmp / "seg.dcm", tmp.path());
  EXPECT_TRUE(report.errors.empty()) << report.text;
}

INSTANTIATE_TEST_SUITE_P(Films, DicomSegValid, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "WithFrameOfReference" : "ProjectionFilm"; });

TEST(DicomSeg, ReferencesItsFilmInItsStudyAsANewSeries) {
  ScratchDir tmp;
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(16, 16), true);
  io::write_dicom_segmentation(tmp / "seg.dcm", blocks(16, 16, {1, 3}), tmp / "film.dcm", jsrt_classes(), kAlgorithm);
  const fs::path seg = tmp / "seg.dcm";
  EXPECT_EQ(element_of(seg, DCM_Modality), "SEG");
  EXPECT_EQ(element_of(seg, DCM_PatientID), "SEGTEST1");
  EXPECT_EQ(element_of(seg, DCM_PatientName), "Test^Film");
  EXPECT_EQ(element_of(seg, DCM_AccessionNumber), "A7");
  EXPECT_EQ(element_of(seg, DCM_StudyInstanceUID), seg::testing::kFilmStudyUid);
  EXPECT_EQ(element_of(seg, DCM_FrameOfReferenceUID), seg::testing::kFilmFrameOfReferenceUid);
  const std::string own_series = element_of(seg, DCM_SeriesInstanceUID);
  EXPECT_FALSE(own_series.empty());
  EXPECT_NE(own_series, seg::testing::kFilmSeriesUid);
  const std::string film_instance = element_of(tmp / "film.dcm", DCM_SOPInstanceUID);
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(seg.c_str()).good());
  DcmItem* referenced_series = nullptr;
  ASSERT_TRUE(file.getDataset()->findAndGetSequenceItem(DCM_ReferencedSeriesSequence, referenced_series, 0).good());
  OFString value;
  referenced_series->findAndGetOFString(DCM_SeriesInstanceUID, value);
  EXPECT_EQ(std::string(value.c_str()), seg::testing::kFilmSeriesUid);
  DcmItem* referenced_instance = nullptr;
  ASSERT_TRUE(referenced_series->findAndGetSequenceItem(DCM_ReferencedInstanceSequence, referenced_instance, 0).good());
  referenced_instance->findAndGetOFString(DCM_ReferencedSOPInstanceUID, value);
  EXPECT_EQ(std::string(value.c_str()), film_instance);
  // The frames say which film they were derived from, too.
  DcmItem* shared = nullptr;
  ASSERT_TRUE(file.getDataset()->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).good());
  DcmItem* derivation = nullptr;
  ASSERT_TRUE(shared->findAndGetSequenceItem(DCM_DerivationImageSequence, derivation, 0).good());
  DcmItem* source = nullptr;
  ASSERT_TRUE(derivation->findAndGetSequenceItem(DCM_SourceImageSequence, source, 0).good());
  source->findAndGetOFString(DCM_ReferencedSOPInstanceUID, value);
  EXPECT_EQ(std::string(value.c_str()), film_instance);
}

TEST(DicomSeg, NamesEachStructureWithItsAnatomysCodesAndTheAlgorithm) {
  ScratchDir tmp;
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(16, 16), false);
  seg::ClassTable classes = jsrt_classes();
  classes.entries.push_back({"nodule", 6});
  io::write_dicom_segmentation(tmp / "seg.dcm", blocks(16, 16, {1, 2, 3, 4, 5, 6}), tmp / "film.dcm", classes, kAlgorithm);
  DcmSegmentation* loaded = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile((tmp / "seg.dcm").c_str(), loaded).good());
  std::unique_ptr<DcmSegmentation> segmentation(loaded);
  ASSERT_EQ(segmentation->getNumberOfSegments(), 6u);
  struct Expected {
    const char* label;
    const char* category;
    const char* type;
    const char* laterality;  // "" for none
  };
  const Expected expected[] = {{"right_lung", "123037004", "39607008", "24028007"},
                               {"left_lung", "123037004", "39607008", "7771000"},
                               {"heart", "123037004", "80891009", ""},
                               {"right_clavicle", "123037004", "51299004", "24028007"},
                               {"left_clavicle", "123037004", "51299004", "7771000"},
                               {"nodule", "123037004", "113343008", ""}};
  for (size_t k = 0; k < 6; ++k) {
    SCOPED_TRACE(expected[k].label);
    DcmSegment* segment = segmentation->getSegment(k + 1);
    ASSERT_NE(segment, nullptr);
    OFString value;
    segment->getSegmentLabel(value);
    EXPECT_EQ(std::string(value.c_str()), expected[k].label);
    segment->getSegmentedPropertyCategoryCode().getCodeValue(value);
    EXPECT_EQ(std::string(value.c_str()), expected[k].category);
    segment->getSegmentedPropertyTypeCode().getCodeValue(value);
    EXPECT_EQ(std::string(value.c_str()), expected[k].type);
    const auto& modifiers = segment->getSegmentedPropertyTypeModifierCode();
    ASSERT_EQ(modifiers.size(), std::string(expected[k].laterality).empty() ? 0u : 1u);
    if (!modifiers.empty()) {
      modifiers[0]->getCodeValue(value);
      EXPECT_EQ(std::string(value.c_str()), expected[k].laterality);
    }
    EXPECT_EQ(segment->getSegmentAlgorithmType(), DcmSegTypes::SAT_AUTOMATIC);
    segment->getSegmentAlgorithmName(value);
    EXPECT_EQ(std::string(value.c_str()), "segsuite");
    AlgorithmIdentificationMacro& algorithm = segment->getSegmentationAlgorithmIdentification();
    algorithm.getAlgorithmVersion(value);
    EXPECT_EQ(std::string(value.c_str()), "0.1.0");
    algorithm.getAlgorithmParameters(value);
    EXPECT_EQ(std::string(value.c_str()), "model=tiny.pth");
  }
}

// Debian's Python reads the frames and the segments as a third-party reader would.
TEST(DicomSeg, PydicomReadsItsFramesAndSegmentLabels) {
  SEG_REQUIRE_PYTHON("pydicom, numpy");
  ScratchDir tmp;
  torch::manual_seed(3);
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(24, 20), true);
  const seg::Image labels = blocks(24, 20, {5, 4, 3, 2, 1});
  io::write_dicom_segmentation(tmp / "seg.dcm", labels, tmp / "film.dcm", jsrt_classes(), kAlgorithm);
  std::ofstream(tmp / "labels.raw", std::ios::binary)
      .write(reinterpret_cast<const char*>(labels.pixels.data_ptr<uint8_t>()), labels.pixels.numel());
  const std::string script = R"(
import numpy, pydicom
d = pydicom.dcmread(")" + (tmp / "seg.dcm").string() + R"(")
labels = numpy.fromfile(")" + (tmp / "labels.raw").string() + R"(", dtype=numpy.uint8).reshape(24, 20)
names = ["right_lung", "left_lung", "heart", "right_clavicle", "left_clavicle"]
assert d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", d.SOPClassUID
assert d.SegmentationType == "BINARY"
assert [s.SegmentLabel for s in d.SegmentSequence] == names, [s.SegmentLabel for s in d.SegmentSequence]
assert d.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "80891009"
frames = d.pixel_array
assert frames.shape == (5, 24, 20), frames.shape
for i, item in enumerate(d.PerFrameFunctionalGroupsSequence):
    number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
    assert (frames[i] == (labels == number)).all(), "frame %d differs from label %d" % (i, number)
)";
  EXPECT_TRUE(seg::testing::run_python(script, tmp.path())) << seg::read_file(tmp / "python.log");
}

// A class table with gaps keeps its values through the segments' descriptions; a SEG without
// them (another program's) gives its segment numbers.
TEST(DicomSeg, KeepsLabelValuesWithGapsAndFallsBackToSegmentNumbers) {
  ScratchDir tmp;
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(30, 20), false);
  const seg::ClassTable classes{{{"background", 0}, {"lungs", 1}, {"heart", 4}, {"nodule", 7}}};
  const seg::Image labels = blocks(30, 20, {7, 1, 4});
  io::write_dicom_segmentation(tmp / "seg.dcm", labels, tmp / "film.dcm", classes, kAlgorithm);
  EXPECT_TRUE(torch::equal(io::read_label_map(tmp / "seg.dcm").pixels, labels.pixels));
  edit_in_place(tmp / "seg.dcm", [](DcmDataset& data) {
    for (unsigned long k = 0; k < 3; ++k) set_segment_description(data, k, "from elsewhere");
  });
  auto numbered = labels.pixels.clone();
  numbered.masked_fill_(labels.pixels == 4, 2);
  numbered.masked_fill_(labels.pixels == 7, 3);
  EXPECT_TRUE(torch::equal(io::read_label_map(tmp / "seg.dcm").pixels, numbered));
}

TEST(DicomSeg, FullDiskLeavesNoFile) {
  ScratchDir tmp;
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(16, 16), true);
  seg::fail_write_for_testing(1);
  const std::string error = error_of([&] {
    io::write_dicom_segmentation(tmp / "seg.dcm", blocks(16, 16, {1, 2}), tmp / "film.dcm", jsrt_classes(), kAlgorithm);
  });
  seg::fail_write_for_testing(0);
  EXPECT_TRUE(contains(error, "seg.dcm")) << error;
  EXPECT_TRUE(contains(error, "no space left on device")) << error;
  EXPECT_EQ(seg::testing::list_files(tmp.path()), std::vector<std::string>{"film.dcm"});
}

TEST(DicomSeg, ReadingObeysThePixelLimit) {
  ScratchDir tmp;
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(16, 16), true);
  io::write_dicom_segmentation(tmp / "seg.dcm", blocks(16, 16, {1}), tmp / "film.dcm", jsrt_classes(), kAlgorithm);
  io::set_default_read_limits({255});
  const std::string error = error_of([&] { io::read_label_map(tmp / "seg.dcm"); });
  io::set_default_read_limits({io::kDefaultMaxPixels});
  EXPECT_TRUE(contains(error, "16 x 16 = 256 pixels, more than the limit of 255")) << error;
}

// Films and label maps a segmentation cannot be made of: one line each, and no file.
struct BadSource {
  const char* name;
  std::function<void(const fs::path& dir, seg::Image& labels)> make;  // writes dir/film.dcm, may change labels
  const char* message;
};

void PrintTo(const BadSource& bad, std::ostream* out) { *out << bad.name; }

class DicomSegRefuses : public ::testing::TestWithParam<BadSource> {};

TEST_P(DicomSegRefuses, WithOneLineAndNoFile) {
  ScratchDir tmp;
  seg::Image labels = blocks(16, 16, {1, 2});
  GetParam().make(tmp.path(), labels);
  const auto before = seg::testing::list_files(tmp.path());
  const std::string error = error_of([&] {
    io::write_dicom_segmentation(tmp / "out.dcm", labels, tmp / "film.dcm", jsrt_classes(), kAlgorithm);
  });
  EXPECT_TRUE(contains(error, GetParam().message)) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_EQ(seg::testing::list_files(tmp.path()), before);
}

INSTANTIATE_TEST_SUITE_P(
    Sources, DicomSegRefuses,
    ::testing::Values(
        BadSource{"FilmWithoutSeriesUid",
                  [](const fs::path& d, seg::Image&) {
                    seg::testing::write_pacs_film(d / "film.dcm", film_pixels(16, 16), true);
                    seg::testing::edit_dicom(d / "film.dcm", {{DCM_SeriesInstanceUID, ""}});
                  },
                  "has no Series Instance UID (0020,000E), so a DICOM SEG cannot reference it"},
        BadSource{"FilmWithoutStudyUid",
                  [](const fs::path& d, seg::Image&) {
                    seg::testing::write_pacs_film(d / "film.dcm", film_pixels(16, 16), true);
                    seg::testing::edit_dicom(d / "film.dcm", {{DCM_StudyInstanceUID, ""}});
                  },
                  "has no Study Instance UID (0020,000D)"},
        BadSource{"FilmNotDicom",
                  [](const fs::path& d, seg::Image&) {
                    io::write_image(d / "film.png", seg::testing::image_of(torch::zeros({16, 16}, torch::kByte), "uint8"));
                    fs::rename(d / "film.png", d / "film.dcm");
                  },
                  "cannot be read as DICOM"},
        BadSource{"FilmIsASegmentation",
                  [](const fs::path& d, seg::Image& labels) {
                    seg::testing::write_pacs_film(d / "source.dcm", film_pixels(16, 16), true);
                    io::write_dicom_segmentation(d / "film.dcm", labels, d / "source.dcm", jsrt_classes(), kAlgorithm);
                  },
                  "is itself a DICOM SEG; give the film it segments"},
        BadSource{"LabelsOfAnotherSize",
                  [](const fs::path& d, seg::Image&) {
                    seg::testing::write_pacs_film(d / "film.dcm", film_pixels(16, 12), true);
                  },
                  "the label map is 16x16 (HxW) but its film"},
        BadSource{"LabelOutsideTheClasses",
                  [](const fs::path& d, seg::Image& labels) {
                    seg::testing::write_pacs_film(d / "film.dcm", film_pixels(16, 16), true);
                    labels.pixels[3][3] = 9;
                  },
                  "label value 9 is not in the class table"}),
    [](const auto& info) { return std::string(info.param.name); });

// Segmentations that do not make a label map: one line each.
struct BadSegmentation {
  const char* name;
  std::function<void(const fs::path& seg)> damage;
  const char* message;
};

void PrintTo(const BadSegmentation& bad, std::ostream* out) { *out << bad.name; }

class DicomSegUnreadable : public ::testing::TestWithParam<BadSegmentation> {};

TEST_P(DicomSegUnreadable, IsRefusedWithOneLine) {
  ScratchDir tmp;
  seg::testing::write_pacs_film(tmp / "film.dcm", film_pixels(16, 16), true);
  io::write_dicom_segmentation(tmp / "seg.dcm", blocks(16, 16, {1, 2, 3}), tmp / "film.dcm", jsrt_classes(), kAlgorithm);
  GetParam().damage(tmp / "seg.dcm");
  const std::string error = error_of([&] { io::read_label_map(tmp / "seg.dcm"); });
  EXPECT_TRUE(contains(error, (tmp / "seg.dcm").string() + ": ")) << error;
  EXPECT_TRUE(contains(error, GetParam().message)) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(
    Segmentations, DicomSegUnreadable,
    ::testing::Values(
        BadSegmentation{"OverlappingSegments",
                        [](const fs::path& seg) {
                          edit_in_place(seg, [](DcmDataset& data) {
                            DcmElement* pixels = nullptr;
                            ASSERT_TRUE(data.findAndGetElement(DCM_PixelData, pixels).good());
                            Uint8* bytes = nullptr;
                            ASSERT_TRUE(pixels->getUint8Array(bytes).good());
                            std::fill_n(bytes, pixels->getLength(), Uint8{0xff});
                          });
                        },
                        "overlaps others at 256 pixels"},
        BadSegmentation{"TwoSegmentsOneValue",
                        [](const fs::path& seg) {
                          edit_in_place(seg, [](DcmDataset& data) { set_segment_description(data, 2, "segsuite label 1"); });
                        },
                        "segments 1 and 3 both claim label value 1"},
        BadSegmentation{"ValueAbove255",
                        [](const fs::path& seg) {
                          edit_in_place(seg, [](DcmDataset& data) { set_segment_description(data, 0, "segsuite label 300"); });
                        },
                        "segment 1 would be label value 300, outside 1..255"},
        BadSegmentation{"CutShort",
                        [](const fs::path& seg) { fs::resize_file(seg, fs::file_size(seg) - 40); },
                        "truncated"}),
    [](const auto& info) { return std::string(info.param.name); });
