// DICOM SEG out through DCMTK's dcmseg: a label map as one binary segment per structure, in an
// object that references its source film (dicom_seg_read.cpp reads such objects back).
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dicom_seg.h>
#include <seg/io/image_header.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrda.h>
#include <dcmtk/dcmdata/dcvrtm.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/oflog/oflog.h>

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "dicom_seg_dcmtk.h"
#include "io_internal.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace detail {

void prepare_dcmtk(const fs::path& path) {
  static std::once_flag once;
  std::call_once(once, [] { OFLog::configure(OFLogger::OFF_LOG_LEVEL); });
  if (!dcmDataDict.isDictionaryLoaded())
    throw Error(path.string(), "DCMTK's DICOM data dictionary is not loaded; install libdcmtk17 (or set DCMDICTPATH)");
}

void check_dicom_parses(const fs::path& path) {
  prepare_dcmtk(path);
  DcmFileFormat file;
  // Values longer than 4 KiB stay on disk: the structure is parsed, the pixels are not read.
  const OFCondition status = file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096);
  if (status.bad())
    throw Error(path.string(), "is not a readable DICOM file (" + std::string(status.text()) +
                                   "): corrupt, truncated or mislabelled");
  if (!file.getDataset()->tagExists(DCM_PixelData))
    throw Error(path.string(), "is a DICOM file without pixel data (no image); give a DICOM image");
}

void check_dcmtk(const OFCondition& condition, const fs::path& path, const std::string& what) {
  if (condition.bad()) throw Error(path.string(), what + ": " + condition.text());
}

std::string text_of(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).bad()) return "";
  return value.c_str();
}

}  // namespace detail

namespace {
using detail::check_dcmtk;
using detail::prepare_dcmtk;
using detail::text_of;

struct Code {
  const char* value;
  const char* scheme;
  const char* meaning;
};

// SNOMED CT codes as DICOM's segmentation context groups give them: the category (CID 7150),
// the anatomy (CID 7151 and the groups it points to) and its laterality (CID 244).
constexpr Code kAnatomicalStructure{"123037004", "SCT", "Anatomical Structure"};
constexpr Code kOrgan{"113343008", "SCT", "Organ"};
constexpr Code kLung{"39607008", "SCT", "Lung"};
constexpr Code kHeart{"80891009", "SCT", "Heart"};
constexpr Code kClavicle{"51299004", "SCT", "Clavicle"};
constexpr Code kRight{"24028007", "SCT", "Right"};
constexpr Code kLeft{"7771000", "SCT", "Left"};
// DICOM's own codes: the algorithm's family, the derivation (CID 7203) and the purpose of the
// reference to the source film (CID 7202).
constexpr Code kArtificialIntelligence{"123110", "DCM", "Artificial Intelligence"};
constexpr Code kSegmentationDerivation{"113076", "DCM", "Segmentation"};
constexpr Code kSourceImagePurpose{"121322", "DCM", "Source image for image processing operation"};

struct StructureCodes {
  Code category, type;
  std::optional<Code> laterality;
};

// The JSRT class names (SCR's structures) have their anatomy's codes; any other class is a
// generic organ, named by its segment label.
StructureCodes codes_of(const std::string& class_name) {
  static const std::map<std::string, StructureCodes> known{
      {"right_lung", {kAnatomicalStructure, kLung, kRight}},
      {"left_lung", {kAnatomicalStructure, kLung, kLeft}},
      {"heart", {kAnatomicalStructure, kHeart, std::nullopt}},
      {"right_clavicle", {kAnatomicalStructure, kClavicle, kRight}},
      {"left_clavicle", {kAnatomicalStructure, kClavicle, kLeft}},
  };
  const auto it = known.find(class_name);
  return it != known.end() ? it->second : StructureCodes{kAnatomicalStructure, kOrgan, std::nullopt};
}

void set_code(CodeSequenceMacro& macro, const Code& code, const fs::path& path) {
  check_dcmtk(macro.setCodeValue(code.value), path, "cannot set a code value");
  check_dcmtk(macro.setCodingSchemeDesignator(code.scheme), path, "cannot set a coding scheme");
  check_dcmtk(macro.setCodeMeaning(code.meaning), path, "cannot set a code meaning");
}

// The film a segmentation is made from, with what the segmentation takes from it.
struct SourceFilm {
  DcmFileFormat file;
  std::string sop_class, sop_instance, study, series;
  Uint16 rows = 0, columns = 0;
  DcmDataset& data() { return *file.getDataset(); }
};

std::unique_ptr<SourceFilm> load_source(const fs::path& film) {
  prepare_dcmtk(film);
  auto source = std::make_unique<SourceFilm>();
  if (source->file.loadFile(film.c_str()).bad())
    throw Error(film.string(), "cannot be read as DICOM, so no DICOM SEG can reference it; use --format png or nii.gz");
  DcmDataset& data = source->data();
  source->sop_class = text_of(data, DCM_SOPClassUID);
  source->sop_instance = text_of(data, DCM_SOPInstanceUID);
  source->study = text_of(data, DCM_StudyInstanceUID);
  source->series = text_of(data, DCM_SeriesInstanceUID);
  if (source->sop_class == UID_SegmentationStorage)
    throw Error(film.string(), "is itself a DICOM SEG; give the film it segments");
  const std::pair<const char*, const std::string*> required[] = {{"SOP Class UID (0008,0016)", &source->sop_class},
                                                                 {"SOP Instance UID (0008,0018)", &source->sop_instance},
                                                                 {"Study Instance UID (0020,000D)", &source->study},
                                                                 {"Series Instance UID (0020,000E)", &source->series}};
  for (const auto& [name, value] : required)
    if (value->empty())
      throw Error(film.string(), std::string("has no ") + name +
                                     ", so a DICOM SEG cannot reference it; export the film from its PACS, or use "
                                     "--format png or nii.gz");
  if (data.findAndGetUint16(DCM_Rows, source->rows).bad() || data.findAndGetUint16(DCM_Columns, source->columns).bad() ||
      source->rows == 0 || source->columns == 0)
    throw Error(film.string(), "has no Rows and Columns, so it is not an image a DICOM SEG can segment");
  return source;
}

// Every frame was derived from the film: the shared Derivation Image group says so.
void add_derivation(DcmSegmentation& segmentation, const SourceFilm& source, const fs::path& path) {
  FGDerivationImage derivation;
  DerivationImageItem* derivation_item = nullptr;
  CodeSequenceMacro derivation_code;
  set_code(derivation_code, kSegmentationDerivation, path);
  check_dcmtk(derivation.addDerivationImageItem(derivation_code, "Segmentation by a trained network", derivation_item),
              path, "cannot describe the derivation");
  auto* source_item = new SourceImageItem();
  derivation_item->getSourceImageItems().push_back(source_item);
  set_code(source_item->getPurposeOfReferenceCode(), kSourceImagePurpose, path);
  ImageSOPInstanceReferenceMacro& reference = source_item->getImageSOPInstanceReference();
  check_dcmtk(reference.setReferencedSOPClassUID(source.sop_class.c_str()), path, "cannot reference the film");
  check_dcmtk(reference.setReferencedSOPInstanceUID(source.sop_instance.c_str()), path, "cannot reference the film");
  check_dcmtk(segmentation.addForAllFrames(derivation), path, "cannot add the derivation");
}

// The film's geometry, shared by every frame: its pixel spacing and, in its Frame of Reference,
// its position and orientation. A film without a Frame of Reference (a projection radiograph)
// states its Patient Orientation instead.
void add_geometry(DcmSegmentation& segmentation, SourceFilm& source, const fs::path& path) {
  DcmDataset& data = source.data();
  const bool has_frame_of_reference = !text_of(data, DCM_FrameOfReferenceUID).empty();
  std::string spacing = text_of(data, DCM_PixelSpacing);
  if (spacing.empty()) spacing = text_of(data, DCM_ImagerPixelSpacing);
  if (!spacing.empty()) {
    FGPixelMeasures measures;
    check_dcmtk(measures.setPixelSpacing(spacing.c_str()), path, "cannot copy the film's pixel spacing");
    // In a Frame of Reference the pixels are a slab: the film's slice thickness, or nominally
    // 1 mm for a projection film, which has none.
    if (has_frame_of_reference) {
      const std::string thickness = text_of(data, DCM_SliceThickness);
      check_dcmtk(measures.setSliceThickness(thickness.empty() ? "1" : thickness.c_str()), path,
                  "cannot copy the film's slice thickness");
    }
    check_dcmtk(segmentation.addForAllFrames(measures), path, "cannot add the pixel spacing");
  }
  if (!has_frame_of_reference) {
    // DCMTK writes the Frame of Reference module unless its rules are gone.
    segmentation.getRules()->deleteRule(DCM_FrameOfReferenceUID);
    segmentation.getRules()->deleteRule(DCM_PositionReferenceIndicator);
    if (IODRule* rule = segmentation.getRules()->getByTag(DCM_PatientOrientation)) rule->setType("2");
    const std::string patient_orientation = text_of(data, DCM_PatientOrientation);
    if (!patient_orientation.empty())
      check_dcmtk(segmentation.getGeneralImage().setPatientOrientation(patient_orientation.c_str()), path,
                  "cannot copy the film's patient orientation");
    return;
  }
  OFString position[3], orientation[6];
  bool has_position = true, has_orientation = true;
  for (unsigned long i = 0; i < 3; ++i)
    has_position = has_position && data.findAndGetOFString(DCM_ImagePositionPatient, position[i], i).good();
  for (unsigned long i = 0; i < 6; ++i)
    has_orientation = has_orientation && data.findAndGetOFString(DCM_ImageOrientationPatient, orientation[i], i).good();
  if (has_position) {
    FGPlanePosPatient plane_position;
    check_dcmtk(plane_position.setImagePositionPatient(position[0], position[1], position[2]), path,
                "cannot copy the film's image position");
    check_dcmtk(segmentation.addForAllFrames(plane_position), path, "cannot add the image position");
  }
  if (has_orientation) {
    FGPlaneOrientationPatient plane_orientation;
    check_dcmtk(plane_orientation.setImageOrientationPatient(orientation[0], orientation[1], orientation[2],
                                                             orientation[3], orientation[4], orientation[5]),
                path, "cannot copy the film's image orientation");
    check_dcmtk(segmentation.addForAllFrames(plane_orientation), path, "cannot add the image orientation");
  }
}

// One segment: the class's name and codes, its label value (kLabelValuePrefix) and what made it.
void add_segment(DcmSegmentation& segmentation, const std::string& class_name, int value,
                 const SegmentationAlgorithm& algorithm, const fs::path& path, Uint16& number) {
  const StructureCodes codes = codes_of(class_name);
  CodeSequenceMacro category, type;
  set_code(category, codes.category, path);
  set_code(type, codes.type, path);
  DcmSegment* created = nullptr;
  check_dcmtk(DcmSegment::create(created, class_name.c_str(), category, type, DcmSegTypes::SAT_AUTOMATIC,
                                 algorithm.name.c_str()),
              path, "cannot describe the segment \"" + class_name + "\"");
  std::unique_ptr<DcmSegment> segment(created);
  if (codes.laterality) {
    auto* modifier = new CodeSequenceMacro();
    segment->getSegmentedPropertyTypeModifierCode().push_back(modifier);
    set_code(*modifier, *codes.laterality, path);
  }
  check_dcmtk(segment->setSegmentDescription((detail::kLabelValuePrefix + std::to_string(value)).c_str()), path,
              "cannot describe the segment \"" + class_name + "\"");
  AlgorithmIdentificationMacro identification;
  set_code(identification.getAlgorithmFamilyCode(), kArtificialIntelligence, path);
  check_dcmtk(identification.setAlgorithmName(algorithm.name.c_str()), path, "cannot name the algorithm");
  check_dcmtk(identification.setAlgorithmVersion(algorithm.version.c_str()), path, "cannot record the algorithm's version");
  if (!algorithm.model.empty())
    check_dcmtk(identification.setAlgorithmParameters(("model=" + algorithm.model).c_str()), path,
                "cannot record the model's name");
  check_dcmtk(segment->setSegmentationAlgorithmIdentification(identification), path, "cannot identify the algorithm");
  check_dcmtk(segmentation.addSegment(segment.get(), number), path, "cannot add the segment \"" + class_name + "\"");
  segment.release();  // the segmentation owns it now
}

// The whole object, serialised in memory: the bytes go to disk through the shared writer.
std::string serialise(DcmSegmentation& segmentation, const fs::path& path) {
  DcmFileFormat file;
  check_dcmtk(segmentation.writeDataset(*file.getDataset()), path, "cannot assemble the DICOM SEG");
  std::string bytes;
  std::vector<char> buffer(1 << 20);
  DcmOutputBufferStream stream(buffer.data(), buffer.size());
  file.transferInit();
  OFCondition status;
  const auto drain = [&] {
    void* chunk = nullptr;
    offile_off_t length = 0;
    stream.flushBuffer(chunk, length);
    bytes.append(static_cast<const char*>(chunk), static_cast<size_t>(length));
  };
  do {
    status = file.write(stream, EXS_LittleEndianExplicit, EET_ExplicitLength, nullptr);
    drain();
  } while (status == EC_StreamNotifyClient);
  file.transferEnd();
  check_dcmtk(status, path, "cannot encode the DICOM SEG");
  stream.flush();
  drain();
  return bytes;
}

std::string current_date() {
  OFString value;
  DcmDate::getCurrentDate(value);
  return value.c_str();
}

std::string current_time() {
  OFString value;
  DcmTime::getCurrentTime(value);
  return value.c_str();
}

// A label map covers its film pixel for pixel, and each of its values is a class.
void check_labels(const fs::path& path, const at::Tensor& pixels, const SourceFilm& source, const fs::path& film,
                  const ClassTable& classes) {
  if (pixels.size(0) != source.rows || pixels.size(1) != source.columns)
    throw Error(path.string(), "the label map is " + std::to_string(pixels.size(0)) + "x" + std::to_string(pixels.size(1)) +
                                   " (HxW) but its film " + film.string() + " is " + std::to_string(source.rows) + "x" +
                                   std::to_string(source.columns) + "; a DICOM SEG covers its film pixel for pixel");
  const auto values = std::get<0>(at::_unique(pixels));
  for (int64_t i = 0; i < values.numel(); ++i) {
    const int value = values[i].item<int>();
    if (!classes.contains(value))
      throw Error(path.string(), "label value " + std::to_string(value) +
                                     " is not in the class table; a DICOM SEG has a segment for each class only");
  }
}

// An empty segmentation of the film's size in the film's study (patient, study and Frame of
// Reference copied), in a new series, that references the film.
std::unique_ptr<DcmSegmentation> create_segmentation(SourceFilm& source, const fs::path& film,
                                                     const SegmentationAlgorithm& algorithm, const fs::path& path) {
  IODGeneralEquipmentModule::EquipmentInfo equipment(algorithm.name.c_str(), algorithm.name.c_str(), "0",
                                                     algorithm.version.c_str());
  ContentIdentificationMacro content("1", "SEGMENTATION", ("Structures segmented by " + algorithm.name).c_str(), "");
  DcmSegmentation* created = nullptr;
  check_dcmtk(DcmSegmentation::createBinarySegmentation(created, source.rows, source.columns, equipment, content), path,
              "cannot create the DICOM SEG");
  std::unique_ptr<DcmSegmentation> segmentation(created);
  check_dcmtk(segmentation->importFromSourceImage(source.data()), path,
              "cannot copy the patient and study of " + film.string());
  IODGeneralSeriesModule& series = segmentation->getSeries();
  check_dcmtk(series.setSeriesNumber("100"), path, "cannot number the series");
  check_dcmtk(series.setSeriesDescription(("Segmentation by " + algorithm.name).c_str()), path,
              "cannot describe the series");
  const std::string date = current_date(), time = current_time();
  check_dcmtk(series.setSeriesDate(date.c_str()), path, "cannot date the series");
  check_dcmtk(series.setSeriesTime(time.c_str()), path, "cannot date the series");
  check_dcmtk(segmentation->getGeneralImage().setContentDate(date.c_str()), path, "cannot date the content");
  check_dcmtk(segmentation->getGeneralImage().setContentTime(time.c_str()), path, "cannot date the content");

  auto* referenced_series = new IODSeriesAndInstanceReferenceMacro::ReferencedSeriesItem();
  segmentation->getCommonInstanceReference().getReferencedSeriesItems().push_back(referenced_series);
  check_dcmtk(referenced_series->setSeriesInstanceUID(source.series.c_str()), path, "cannot reference the film's series");
  auto* referenced_instance = new SOPInstanceReferenceMacro();
  referenced_series->getReferencedInstanceItems().push_back(referenced_instance);
  check_dcmtk(referenced_instance->setReferencedSOPClassUID(source.sop_class.c_str()), path, "cannot reference the film");
  check_dcmtk(referenced_instance->setReferencedSOPInstanceUID(source.sop_instance.c_str()), path,
              "cannot reference the film");
  return segmentation;
}

// The frames are indexed by one dimension: the segment each holds.
void add_segment_dimension(DcmSegmentation& segmentation, const fs::path& path) {
  char uid[100];
  dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
  IODMultiframeDimensionModule& dimensions = segmentation.getDimensions();
  check_dcmtk(dimensions.addDimensionIndex(DCM_ReferencedSegmentNumber, uid, DCM_SegmentIdentificationSequence, "Segment"),
              path, "cannot add the segment dimension");
  auto organisation = std::make_unique<IODMultiframeDimensionModule::DimensionOrganizationItem>();
  check_dcmtk(organisation->setDimensionOrganizationUID(uid), path, "cannot add the segment dimension");
  dimensions.getDimensionOrganizationSequence().push_back(organisation.release());
}

// One class: its segment, and its frame (the pixels of that value).
void add_structure(DcmSegmentation& segmentation, const std::string& name, int value, const at::Tensor& pixels,
                   const SegmentationAlgorithm& algorithm, const fs::path& path) {
  Uint16 number = 0;
  add_segment(segmentation, name, value, algorithm, path, number);
  FGFrameContent frame_content;
  check_dcmtk(frame_content.setDimensionIndexValues(number, 0), path, "cannot index the frame");
  // addFrame adds the frame's Segmentation group (its segment number) itself.
  OFVector<FGBase*> per_frame;
  per_frame.push_back(&frame_content);
  auto mask = pixels.eq(value).to(at::kByte).contiguous();
  check_dcmtk(segmentation.addFrame(mask.data_ptr<uint8_t>(), number, per_frame), path,
              "cannot add the frame of \"" + name + "\"");
}

}  // namespace

void check_segmentation_source(const fs::path& film) { load_source(film); }

void write_dicom_segmentation(const fs::path& path, const Image& labels, const fs::path& film,
                              const ClassTable& classes, const SegmentationAlgorithm& algorithm) {
  const auto& pixels = labels.pixels;
  if (!pixels.defined() || pixels.dim() != 2 || pixels.scalar_type() != at::kByte)
    throw Error(path.string(), "a label map must be an H x W uint8 tensor");
  const auto source = load_source(film);
  check_labels(path, pixels, *source, film, classes);
  const auto segmentation = create_segmentation(*source, film, algorithm, path);
  add_derivation(*segmentation, *source, path);
  add_geometry(*segmentation, *source, path);
  add_segment_dimension(*segmentation, path);
  for (const auto& [name, value] : classes.entries)
    if (value != 0) add_structure(*segmentation, name, value, pixels, algorithm, path);
  write_file_atomically(path, serialise(*segmentation, path));
}

}  // namespace seg::io
