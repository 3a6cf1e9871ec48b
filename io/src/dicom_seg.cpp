// DICOM SEG through DCMTK's dcmseg: a label map out as one binary segment per structure that
// references its source film, and a segmentation back in as a label map.
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
#include <dcmtk/dcmseg/segutils.h>
#include <dcmtk/oflog/oflog.h>

#include <ATen/ATen.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "image_header_parse.h"
#include "io_internal.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLabelValuePrefix = "segsuite label ";

struct Code {
  const char* value;
  const char* scheme;
  const char* meaning;
};

// SNOMED CT codes from DICOM's CID 7150 (categories), CID 7151 (types) and CID 244 (laterality).
constexpr Code kAnatomicalStructure{"123037004", "SCT", "Anatomical Structure"};
constexpr Code kOrgan{"113343008", "SCT", "Organ"};
constexpr Code kLung{"39607008", "SCT", "Lung"};
constexpr Code kHeart{"80891009", "SCT", "Heart"};
constexpr Code kClavicle{"51299004", "SCT", "Clavicle"};
constexpr Code kRight{"24028007", "SCT", "Right"};
constexpr Code kLeft{"7771000", "SCT", "Left"};
// DICOM's own codes: the algorithm family (CID 7162), the derivation (CID 7203) and the
// purpose of the reference to the source film (CID 7202).
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

// DCMTK logs to stderr through oflog; its conditions reach our one error line instead. Its data
// dictionary must be there for any of it to work.
void prepare_dcmtk(const fs::path& path) {
  static std::once_flag once;
  std::call_once(once, [] { OFLog::configure(OFLogger::OFF_LOG_LEVEL); });
  if (!dcmDataDict.isDictionaryLoaded())
    throw Error(path.string(), "DCMTK's DICOM data dictionary is not loaded; install libdcmtk17 (or set DCMDICTPATH)");
}

// Throws seg::Error(path, "<what>: <DCMTK's reason>") for a failed DCMTK call.
void check(const OFCondition& condition, const fs::path& path, const std::string& what) {
  if (condition.bad()) throw Error(path.string(), what + ": " + condition.text());
}

void set_code(CodeSequenceMacro& macro, const Code& code, const fs::path& path) {
  check(macro.setCodeValue(code.value), path, "cannot set a code value");
  check(macro.setCodingSchemeDesignator(code.scheme), path, "cannot set a coding scheme");
  check(macro.setCodeMeaning(code.meaning), path, "cannot set a code meaning");
}

std::string text_of(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).bad()) return "";
  return value.c_str();
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

// The shared functional groups: what the frames were derived from, and the film's geometry
// where it has one (spacing; position and orientation in its Frame of Reference).
void add_shared_groups(DcmSegmentation& segmentation, SourceFilm& source, const fs::path& path) {
  ImageSOPInstanceReferenceMacro reference;
  check(reference.setReferencedSOPClassUID(source.sop_class.c_str()), path, "cannot reference the film");
  check(reference.setReferencedSOPInstanceUID(source.sop_instance.c_str()), path, "cannot reference the film");
  FGDerivationImage derivation;
  DerivationImageItem* derivation_item = nullptr;
  CodeSequenceMacro derivation_code;
  set_code(derivation_code, kSegmentationDerivation, path);
  check(derivation.addDerivationImageItem(derivation_code, "Segmentation by a trained network", derivation_item), path,
        "cannot describe the derivation");
  OFVector<SourceImageItem*>& sources = derivation_item->getSourceImageItems();
  auto* source_item = new SourceImageItem();
  sources.push_back(source_item);
  set_code(source_item->getPurposeOfReferenceCode(), kSourceImagePurpose, path);
  check(source_item->getImageSOPInstanceReference().setReferencedSOPClassUID(source.sop_class.c_str()), path,
        "cannot reference the film");
  check(source_item->getImageSOPInstanceReference().setReferencedSOPInstanceUID(source.sop_instance.c_str()), path,
        "cannot reference the film");
  check(segmentation.addForAllFrames(derivation), path, "cannot add the derivation");

  DcmDataset& data = source.data();
  const bool has_frame_of_reference = !text_of(data, DCM_FrameOfReferenceUID).empty();
  std::string spacing = text_of(data, DCM_PixelSpacing);
  if (spacing.empty()) spacing = text_of(data, DCM_ImagerPixelSpacing);
  if (!spacing.empty()) {
    FGPixelMeasures measures;
    check(measures.setPixelSpacing(spacing.c_str()), path, "cannot copy the film's pixel spacing");
    // In a Frame of Reference the pixels are a slab: its thickness is the film's, or nominally
    // 1 mm for a projection film, which has none.
    if (has_frame_of_reference) {
      const std::string thickness = text_of(data, DCM_SliceThickness);
      check(measures.setSliceThickness(thickness.empty() ? "1" : thickness.c_str()), path,
            "cannot copy the film's slice thickness");
    }
    check(segmentation.addForAllFrames(measures), path, "cannot add the pixel spacing");
  }
  if (!has_frame_of_reference) {
    // A film without a Frame of Reference is referenced through the Derivation Image group
    // alone; DCMTK writes the module unless its rules are gone.
    segmentation.getRules()->deleteRule(DCM_FrameOfReferenceUID);
    segmentation.getRules()->deleteRule(DCM_PositionReferenceIndicator);
    // Such an image states its Patient Orientation instead (the film's, empty if unknown).
    if (IODRule* rule = segmentation.getRules()->getByTag(DCM_PatientOrientation)) rule->setType("2");
    const std::string patient_orientation = text_of(data, DCM_PatientOrientation);
    if (!patient_orientation.empty())
      check(segmentation.getGeneralImage().setPatientOrientation(patient_orientation.c_str()), path,
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
    check(plane_position.setImagePositionPatient(position[0], position[1], position[2]), path,
          "cannot copy the film's image position");
    check(segmentation.addForAllFrames(plane_position), path, "cannot add the image position");
  }
  if (has_orientation) {
    FGPlaneOrientationPatient plane_orientation;
    check(plane_orientation.setImageOrientationPatient(orientation[0], orientation[1], orientation[2], orientation[3],
                                                       orientation[4], orientation[5]),
          path, "cannot copy the film's image orientation");
    check(segmentation.addForAllFrames(plane_orientation), path, "cannot add the image orientation");
  }
}

void add_segment(DcmSegmentation& segmentation, const std::string& class_name, int value,
                 const SegmentationAlgorithm& algorithm, const fs::path& path, Uint16& number) {
  const StructureCodes codes = codes_of(class_name);
  CodeSequenceMacro category, type;
  set_code(category, codes.category, path);
  set_code(type, codes.type, path);
  DcmSegment* created = nullptr;
  check(DcmSegment::create(created, class_name.c_str(), category, type, DcmSegTypes::SAT_AUTOMATIC,
                           algorithm.name.c_str()),
        path, "cannot describe the segment \"" + class_name + "\"");
  std::unique_ptr<DcmSegment> segment(created);
  if (codes.laterality) {
    auto* modifier = new CodeSequenceMacro();
    segment->getSegmentedPropertyTypeModifierCode().push_back(modifier);
    set_code(*modifier, *codes.laterality, path);
  }
  check(segment->setSegmentDescription((kLabelValuePrefix + std::to_string(value)).c_str()), path,
        "cannot describe the segment \"" + class_name + "\"");
  AlgorithmIdentificationMacro identification;
  set_code(identification.getAlgorithmFamilyCode(), kArtificialIntelligence, path);
  check(identification.setAlgorithmName(algorithm.name.c_str()), path, "cannot name the algorithm");
  check(identification.setAlgorithmVersion(algorithm.version.c_str()), path, "cannot record the algorithm's version");
  if (!algorithm.model.empty())
    check(identification.setAlgorithmParameters(("model=" + algorithm.model).c_str()), path,
          "cannot record the model's name");
  check(segment->setSegmentationAlgorithmIdentification(identification), path, "cannot identify the algorithm");
  check(segmentation.addSegment(segment.get(), number), path, "cannot add the segment \"" + class_name + "\"");
  segment.release();  // the segmentation owns it now
}

// The whole object, serialised in memory: the bytes go to disk through the shared writer.
std::string serialise(DcmSegmentation& segmentation, const fs::path& path) {
  DcmFileFormat file;
  check(segmentation.writeDataset(*file.getDataset()), path, "cannot assemble the DICOM SEG");
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
  check(status, path, "cannot encode the DICOM SEG");
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

}  // namespace

bool is_dicom_segmentation(const fs::path& path) {
  const std::string extension = detail::full_extension(path);
  if (extension != ".dcm" && !extension.empty()) return false;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  prepare_dcmtk(path);
  DcmFileFormat file;
  if (file.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect,
                            DCM_SOPInstanceUID)
          .bad())
    return false;
  return text_of(*file.getDataset(), DCM_SOPClassUID) == UID_SegmentationStorage;
}

void check_segmentation_source(const fs::path& film) { load_source(film); }

void write_dicom_segmentation(const fs::path& path, const Image& labels, const fs::path& film,
                              const ClassTable& classes, const SegmentationAlgorithm& algorithm) {
  const auto& pixels = labels.pixels;
  if (!pixels.defined() || pixels.dim() != 2 || pixels.scalar_type() != at::kByte)
    throw Error(path.string(), "a label map must be an H x W uint8 tensor");
  const auto source = load_source(film);
  if (pixels.size(0) != source->rows || pixels.size(1) != source->columns)
    throw Error(path.string(), "the label map is " + std::to_string(pixels.size(0)) + "x" + std::to_string(pixels.size(1)) +
                                   " (HxW) but its film " + film.string() + " is " + std::to_string(source->rows) + "x" +
                                   std::to_string(source->columns) + "; a DICOM SEG covers its film pixel for pixel");
  const auto values = std::get<0>(at::_unique(pixels));
  for (int64_t i = 0; i < values.numel(); ++i) {
    const int value = values[i].item<int>();
    if (!classes.contains(value))
      throw Error(path.string(), "label value " + std::to_string(value) + " is not in the class table; a DICOM SEG "
                                 "has a segment for each class only");
  }

  IODGeneralEquipmentModule::EquipmentInfo equipment(algorithm.name.c_str(), algorithm.name.c_str(), "0",
                                                     algorithm.version.c_str());
  ContentIdentificationMacro content("1", "SEGMENTATION", ("Structures segmented by " + algorithm.name).c_str(), "");
  DcmSegmentation* created = nullptr;
  check(DcmSegmentation::createBinarySegmentation(created, source->rows, source->columns, equipment, content), path,
        "cannot create the DICOM SEG");
  std::unique_ptr<DcmSegmentation> segmentation(created);
  check(segmentation->importFromSourceImage(source->data()), path,
        "cannot copy the patient and study of " + film.string());
  IODGeneralSeriesModule& series = segmentation->getSeries();
  check(series.setSeriesNumber("100"), path, "cannot number the series");
  check(series.setSeriesDescription(("Segmentation by " + algorithm.name).c_str()), path, "cannot describe the series");
  const std::string date = current_date(), time = current_time();
  check(series.setSeriesDate(date.c_str()), path, "cannot date the series");
  check(series.setSeriesTime(time.c_str()), path, "cannot date the series");
  check(segmentation->getGeneralImage().setContentDate(date.c_str()), path, "cannot date the content");
  check(segmentation->getGeneralImage().setContentTime(time.c_str()), path, "cannot date the content");

  auto* referenced_series = new IODSeriesAndInstanceReferenceMacro::ReferencedSeriesItem();
  segmentation->getCommonInstanceReference().getReferencedSeriesItems().push_back(referenced_series);
  check(referenced_series->setSeriesInstanceUID(source->series.c_str()), path, "cannot reference the film's series");
  auto* referenced_instance = new SOPInstanceReferenceMacro();
  referenced_series->getReferencedInstanceItems().push_back(referenced_instance);
  check(referenced_instance->setReferencedSOPClassUID(source->sop_class.c_str()), path, "cannot reference the film");
  check(referenced_instance->setReferencedSOPInstanceUID(source->sop_instance.c_str()), path,
        "cannot reference the film");

  add_shared_groups(*segmentation, *source, path);

  char dimension_uid[100];
  dcmGenerateUniqueIdentifier(dimension_uid, SITE_INSTANCE_UID_ROOT);
  IODMultiframeDimensionModule& dimensions = segmentation->getDimensions();
  check(dimensions.addDimensionIndex(DCM_ReferencedSegmentNumber, dimension_uid, DCM_SegmentIdentificationSequence,
                                     "Segment"),
        path, "cannot add the segment dimension");
  auto organisation = std::make_unique<IODMultiframeDimensionModule::DimensionOrganizationItem>();
  check(organisation->setDimensionOrganizationUID(dimension_uid), path, "cannot add the segment dimension");
  dimensions.getDimensionOrganizationSequence().push_back(organisation.release());

  const auto contiguous = pixels.contiguous();
  for (const auto& [name, value] : classes.entries) {
    if (value == 0) continue;
    Uint16 number = 0;
    add_segment(*segmentation, name, value, algorithm, path, number);
    FGFrameContent frame_content;
    check(frame_content.setDimensionIndexValues(number, 0), path, "cannot index the frame");
    // addFrame adds the frame's Segmentation group (its segment number) itself.
    OFVector<FGBase*> per_frame;
    per_frame.push_back(&frame_content);
    auto mask = contiguous.eq(value).to(at::kByte).contiguous();
    check(segmentation->addFrame(mask.data_ptr<uint8_t>(), number, per_frame), path,
          "cannot add the frame of \"" + name + "\"");
  }
  write_file_atomically(path, serialise(*segmentation, path));
}

Image read_dicom_segmentation(const fs::path& path) {
  detail::require_readable_file(path);
  prepare_dcmtk(path);
  DcmFileFormat file;
  if (file.loadFile(path.c_str()).bad())
    throw Error(path.string(), "cannot be read as DICOM; the file is corrupt or truncated");
  DcmDataset& data = *file.getDataset();
  if (text_of(data, DCM_SOPClassUID) != UID_SegmentationStorage)
    throw Error(path.string(), "is not a DICOM SEG (its SOP Class is not Segmentation Storage)");
  Uint16 rows = 0, columns = 0;
  data.findAndGetUint16(DCM_Rows, rows);
  data.findAndGetUint16(DCM_Columns, columns);
  detail::check_image_shape(path, {columns, rows}, 1, ReadLimits{});
  DcmSegmentation* loaded = nullptr;
  const OFCondition status = DcmSegmentation::loadDataset(data, loaded);
  std::unique_ptr<DcmSegmentation> segmentation(loaded);
  check(status, path, "is not a valid DICOM SEG");
  if (segmentation->getSegmentationType() != DcmSegTypes::ST_BINARY)
    throw Error(path.string(), "is a FRACTIONAL DICOM SEG (probabilities); a label map is read from a BINARY one only");

  // Each segment's label value, by our convention or else by its number.
  std::map<Uint16, int> value_of_segment;
  std::map<int, Uint16> segment_of_value;
  for (size_t number = 1; number <= segmentation->getNumberOfSegments(); ++number) {
    DcmSegment* segment = segmentation->getSegment(number);
    if (!segment) throw Error(path.string(), "has no segment number " + std::to_string(number) + "; the file is corrupt");
    int value = static_cast<int>(number);
    OFString description;
    if (segment->getSegmentDescription(description).good()) {
      const std::string text = description.c_str();
      const std::string prefix = kLabelValuePrefix;
      if (text.rfind(prefix, 0) == 0 && text.size() > prefix.size() && text.size() <= prefix.size() + 3 &&
          text.find_first_not_of("0123456789", prefix.size()) == std::string::npos)
        value = std::stoi(text.substr(prefix.size()));
    }
    if (value < 1 || value > 255)
      throw Error(path.string(), "segment " + std::to_string(number) + " would be label value " + std::to_string(value) +
                                     ", outside 1..255; a label map holds small non-negative integers");
    const auto [other, fresh] = segment_of_value.emplace(value, static_cast<Uint16>(number));
    if (!fresh)
      throw Error(path.string(), "segments " + std::to_string(other->second) + " and " + std::to_string(number) +
                                     " both claim label value " + std::to_string(value) + "; the file is inconsistent");
    value_of_segment[static_cast<Uint16>(number)] = value;
  }

  auto labels = at::zeros({rows, columns}, at::kByte);
  uint8_t* out = labels.data_ptr<uint8_t>();
  std::vector<bool> segment_seen(segmentation->getNumberOfSegments() + 1, false);
  FGInterface& groups = segmentation->getFunctionalGroups();
  for (size_t frame = 0; frame < segmentation->getNumberOfFrames(); ++frame) {
    auto* frame_segment = dynamic_cast<FGSegmentation*>(groups.get(static_cast<Uint32>(frame), DcmFGTypes::EFG_SEGMENTATION));
    Uint16 number = 0;
    if (!frame_segment || frame_segment->getReferencedSegmentNumber(number).bad() || !value_of_segment.count(number))
      throw Error(path.string(), "frame " + std::to_string(frame + 1) + " names no segment of the file; the file is corrupt");
    if (segment_seen[number])
      throw Error(path.string(), "holds more than one frame of segment " + std::to_string(number) +
                                     " (a volume); only a DICOM SEG of one image is read as a label map");
    segment_seen[number] = true;
    const DcmIODTypes::Frame* packed = segmentation->getFrame(frame);
    if (!packed) throw Error(path.string(), "frame " + std::to_string(frame + 1) + " is missing; the file is corrupt or truncated");
    std::unique_ptr<DcmIODTypes::Frame> unpacked(DcmSegUtils::unpackBinaryFrame(packed, rows, columns));
    if (!unpacked || unpacked->length < static_cast<size_t>(rows) * columns)
      throw Error(path.string(), "frame " + std::to_string(frame + 1) + " is cut short; the file is corrupt or truncated");
    const auto value = static_cast<uint8_t>(value_of_segment[number]);
    int64_t overlaps = 0;
    for (size_t i = 0; i < static_cast<size_t>(rows) * columns; ++i) {
      if (!unpacked->pixData[i]) continue;
      if (out[i]) ++overlaps;
      out[i] = value;
    }
    if (overlaps)
      throw Error(path.string(), "segment " + std::to_string(number) + " overlaps others at " + std::to_string(overlaps) +
                                     " pixels; a label map holds one label a pixel (split the segments into masks)");
  }

  Image image;
  image.pixels = labels;
  image.pixel_type = "uint8";
  bool per_frame = false;
  if (auto* measures = dynamic_cast<FGPixelMeasures*>(groups.get(0, DcmFGTypes::EFG_PIXELMEASURES, per_frame))) {
    Float64 row_spacing = 0, column_spacing = 0;
    if (measures->getPixelSpacing(row_spacing, 0).good() && measures->getPixelSpacing(column_spacing, 1).good() &&
        row_spacing > 0 && column_spacing > 0) {
      image.geometry.spacing = {column_spacing, row_spacing};
      image.geometry.has_spacing = true;
    }
  }
  if (auto* position = dynamic_cast<FGPlanePosPatient*>(groups.get(0, DcmFGTypes::EFG_PLANEPOSPATIENT, per_frame))) {
    Float64 x = 0, y = 0, z = 0;
    if (position->getImagePositionPatient(x, y, z).good()) image.geometry.origin = {x, y};
  }
  if (auto* orientation = dynamic_cast<FGPlaneOrientationPatient*>(groups.get(0, DcmFGTypes::EFG_PLANEORIENTPATIENT, per_frame))) {
    Float64 row_x = 0, row_y = 0, row_z = 0, column_x = 0, column_y = 0, column_z = 0;
    if (orientation->getImageOrientationPatient(row_x, row_y, row_z, column_x, column_y, column_z).good())
      image.geometry.direction = {row_x, column_x, row_y, column_y};
  }
  return image;
}

}  // namespace seg::io
