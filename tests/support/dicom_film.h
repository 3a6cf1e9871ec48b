#pragma once
// A DICOM film as a PACS exports it (patient, study, series and, when asked, a Frame of
// Reference with the image's position and orientation): write_dicom's bare film with those
// elements added through DCMTK, which segio links. For tests of DICOM SEG output.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fixtures.h"

namespace seg::testing {

// The UIDs the films below carry, for tests that look for them in a segmentation.
inline const char* kFilmStudyUid = "1.2.826.0.1.3680043.2.1125.7.1";
inline const char* kFilmSeriesUid = "1.2.826.0.1.3680043.2.1125.7.2";
inline const char* kFilmFrameOfReferenceUid = "1.2.826.0.1.3680043.2.1125.7.3";

// Sets (or, for an empty value, removes) elements of a DICOM file in place.
inline void edit_dicom(const std::filesystem::path& path, const std::vector<std::pair<DcmTagKey, std::string>>& elements) {
  DcmFileFormat file;
  if (file.loadFile(path.c_str()).bad()) throw std::runtime_error("cannot load " + path.string());
  DcmDataset& data = *file.getDataset();
  for (const auto& [tag, value] : elements) {
    const OFCondition done = value.empty() ? data.findAndDeleteElement(tag) : data.putAndInsertString(tag, value.c_str());
    if (done.bad() && !(value.empty() && done == EC_TagNotFound))
      throw std::runtime_error("cannot set " + std::string(DcmTag(tag).getTagName()) + " in " + path.string());
  }
  if (file.saveFile(path.c_str(), EXS_LittleEndianExplicit).bad()) throw std::runtime_error("cannot save " + path.string());
}

// A MONOCHROME2 film of `pixels` (H x W, 12-bit values) with patient, study and series; with
// `frame_of_reference`, also a Frame of Reference, Image Position and Image Orientation.
inline void write_pacs_film(const std::filesystem::path& path, const at::Tensor& pixels, bool frame_of_reference) {
  write_dicom(path, pixels, "MONOCHROME2");
  std::vector<std::pair<DcmTagKey, std::string>> elements{
      {DCM_PatientName, "Test^Film"},        {DCM_PatientID, "SEGTEST1"},
      {DCM_PatientBirthDate, "19700101"},    {DCM_PatientSex, "O"},
      {DCM_StudyInstanceUID, kFilmStudyUid}, {DCM_SeriesInstanceUID, kFilmSeriesUid},
      {DCM_StudyDate, "20240102"},           {DCM_StudyTime, "101500"},
      {DCM_StudyID, "7"},                    {DCM_AccessionNumber, "A7"},
      {DCM_ReferringPhysicianName, "Ref^Doc"}, {DCM_SeriesNumber, "3"},
      {DCM_InstanceNumber, "1"},
  };
  if (frame_of_reference) {
    elements.push_back({DCM_FrameOfReferenceUID, kFilmFrameOfReferenceUid});
    elements.push_back({DCM_ImagePositionPatient, "-120\\-95.5\\0"});
    elements.push_back({DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0"});
  }
  edit_dicom(path, elements);
}

}  // namespace seg::testing
