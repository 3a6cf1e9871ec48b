#pragma once
// What the DICOM SEG writer (dicom_seg.cpp) and reader (dicom_seg_read.cpp) share: DCMTK set up
// quietly, its conditions turned into seg::Error, and the label-value convention. Never
// installed: it includes DCMTK.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/ofstd/ofcond.h>

#include <filesystem>
#include <string>

namespace seg::io::detail {

// A segment whose Segment Description is "segsuite label V" was written from label value V.
inline constexpr const char* kLabelValuePrefix = "segsuite label ";

// Silences DCMTK's own log (its conditions reach our one error line instead), once per process,
// and throws seg::Error naming `path` when DCMTK's data dictionary is missing.
void prepare_dcmtk(const std::filesystem::path& path);

// Throws seg::Error(path, "<what>: <DCMTK's reason>") for a failed DCMTK call.
void check_dcmtk(const OFCondition& condition, const std::filesystem::path& path, const std::string& what);

// The value of a top-level element of `item` as text, "" when it is absent.
std::string text_of(DcmItem& item, const DcmTagKey& tag);

}  // namespace seg::io::detail
