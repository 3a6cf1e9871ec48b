// Headers of the medical formats ITK reads: NIfTI-1 and -2 (.nii, .nii.gz), NRRD (.nrrd,
// .nhdr with a detached data file) and MetaImage (.mha, .mhd).
#include <seg/error.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <sstream>

#include "image_header_parse.h"

namespace seg::io::detail {
namespace fs = std::filesystem;

namespace {

// A pixel type and how many values of it one pixel holds.
struct ValueType {
  std::string pixel_type;
  int bytes = 0;
  int values_per_pixel = 1;
};

ImageHeader medical_header(const char* format, const std::vector<int64_t>& dimensions, int channels,
                           const std::string& pixel_type) {
  ImageHeader header;
  header.format = format;
  header.width = dimensions.at(0);
  header.height = dimensions.at(1);
  header.channels = channels;
  header.pixel_type = pixel_type;
  header.has_spacing = true;
  return header;
}

uint64_t product(const std::vector<int64_t>& sizes) {
  uint64_t total = 1;
  for (const int64_t size : sizes) total = saturating_product(total, static_cast<uint64_t>(std::max<int64_t>(size, 0)));
  return total;
}

// A count for the shape checks, which refuse anything above a few values per pixel anyway.
int64_t as_count(uint64_t count) { return static_cast<int64_t>(std::min<uint64_t>(count, uint64_t{1} << 40)); }

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Whole numbers separated by spaces; anything else in `text` is malformed.
std::vector<int64_t> integers(const fs::path& path, const char* format, const std::string& field, const std::string& text) {
  std::istringstream in(text);
  std::vector<int64_t> out;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size()) malformed(path, format, field + " \"" + text + "\" is not a list of whole numbers");
    out.push_back(value);
  }
  return out;
}

// The data file a detached header names, relative to the header's folder.
fs::path data_file_of(const fs::path& header_path, const std::string& name) {
  const fs::path data(name);
  return data.is_absolute() ? data : header_path.parent_path() / data;
}

}  // namespace

// NIfTI-1 (348-byte header) or NIfTI-2 (540 bytes), either byte order, gzip'd or not (told
// by the content, as niftilib does, not by the extension).
ImageHeader nifti_header(const FileBytes& file, const ReadLimits& limits) {
  static const char* kFormat = "NIfTI";
  const std::string magic = file.read(0, 2);
  const bool compressed = magic == "\x1f\x8b";
  const std::string bytes = compressed ? gunzip_prefix(file, 0, 540) : file.read(0, 540);
  if (bytes.size() < 348) truncated(file.path(), "its header has " + std::to_string(bytes.size()) + " of at least 348 bytes");
  const HeaderFields little(bytes, false, file.path(), kFormat), big(bytes, true, file.path(), kFormat);
  const bool swapped = little.i32(0) != 348 && little.i32(0) != 540;
  const HeaderFields& fields = swapped ? big : little;
  const int32_t header_size = fields.i32(0);
  if (header_size != 348 && header_size != 540) malformed(file.path(), kFormat, "header size " + std::to_string(header_size));
  const bool nifti2 = header_size == 540;
  if (nifti2 && bytes.size() < 540) truncated(file.path(), "its NIfTI-2 header has " + std::to_string(bytes.size()) + " of 540 bytes");

  int rank;
  std::vector<int64_t> dim(8, 1);
  int datatype;
  double data_offset;
  if (nifti2) {
    datatype = fields.i16(12);
    const int64_t dim0 = fields.i64(16);
    if (dim0 < 1 || dim0 > 7) malformed(file.path(), kFormat, "dim[0] = " + std::to_string(dim0));
    rank = static_cast<int>(dim0);
    for (int d = 1; d <= rank; ++d) dim[static_cast<size_t>(d)] = fields.i64(16 + 8 * static_cast<size_t>(d));
    data_offset = static_cast<double>(fields.i64(168));
  } else {
    datatype = fields.i16(70);
    rank = fields.i16(40);
    if (rank < 1 || rank > 7) malformed(file.path(), kFormat, "dim[0] = " + std::to_string(rank));
    for (int d = 1; d <= rank; ++d) dim[static_cast<size_t>(d)] = fields.i16(40 + 2 * static_cast<size_t>(d));
    data_offset = fields.f32(108);
  }
  if (!std::isfinite(data_offset) || data_offset < 0 || data_offset > 1e15)
    malformed(file.path(), kFormat, "vox_offset " + std::to_string(data_offset));
  // ITK would read a spacing of 0 or NaN as 1 mm, and distances in mm would be made up.
  for (size_t axis = 1; axis <= 2; ++axis) {
    const double spacing = nifti2 ? fields.f64(104 + 8 * axis) : static_cast<double>(fields.f32(76 + 4 * axis));
    if (!std::isfinite(spacing) || spacing == 0.0)
      malformed(file.path(), kFormat, "pixdim[" + std::to_string(axis) + "] (the pixel spacing) " + std::to_string(spacing) +
                                          " is not a size; set the spacing in its header");
  }

  static const std::map<int, ValueType> kTypes = {
      {2, {"uint8", 1}},     {4, {"int16", 2}},   {8, {"int32", 4}},    {16, {"float32", 4}},
      {32, {"float32", 4, 2}} /* complex64 */,    {64, {"float64", 8}}, {128, {"uint8", 1, 3}} /* RGB24 */,
      {256, {"int8", 1}},    {512, {"uint16", 2}}, {768, {"uint32", 4}}, {1024, {"int64", 8}},
      {1280, {"uint64", 8}}, {1792, {"float64", 8, 2}} /* complex128 */, {2304, {"uint8", 1, 4}} /* RGBA32 */};
  const auto type = kTypes.find(datatype);
  if (type == kTypes.end()) malformed(file.path(), kFormat, "datatype " + std::to_string(datatype) + " is not one ITK reads");

  // dim[1..4]: x, y, z, t; dim[5]: values per pixel (ITK's vector images); dim[6..7]: more axes.
  std::vector<int64_t> dimensions;
  for (int d = 1; d <= rank; ++d)
    if (d != 5) dimensions.push_back(dim[static_cast<size_t>(d)]);
  while (dimensions.size() < 2) dimensions.push_back(1);
  const int64_t vector_size = rank >= 5 ? dim[5] : 1;
  if (vector_size < 1) malformed(file.path(), kFormat, "dim[5] = " + std::to_string(vector_size));
  const int64_t channels = as_count(saturating_product(static_cast<uint64_t>(vector_size), static_cast<uint64_t>(type->second.values_per_pixel)));
  const ImageHeader header = medical_header(nifti2 ? "NIfTI-2" : "NIfTI-1", dimensions, static_cast<int>(std::min<int64_t>(channels, 5)),
                                            type->second.pixel_type);
  check_image_shape(file.path(), dimensions, channels, limits);

  const uint64_t promised = saturating_sum(static_cast<uint64_t>(data_offset),
                                           saturating_product(product(dimensions), static_cast<uint64_t>(channels * type->second.bytes)));
  if (compressed)
    require_gzip_holds(file, 0, promised);
  else
    require_raw_bytes(file.path(), file.size(), promised);
  return header;
}

namespace {

// NRRD's type names (teem's airEnum of them).
std::optional<ValueType> nrrd_type(const std::string& name) {
  static const std::map<std::string, ValueType> kTypes = {
      {"signed char", {"int8", 1}}, {"int8", {"int8", 1}}, {"int8_t", {"int8", 1}},
      {"uchar", {"uint8", 1}}, {"unsigned char", {"uint8", 1}}, {"uint8", {"uint8", 1}}, {"uint8_t", {"uint8", 1}},
      {"short", {"int16", 2}}, {"short int", {"int16", 2}}, {"signed short", {"int16", 2}},
      {"signed short int", {"int16", 2}}, {"int16", {"int16", 2}}, {"int16_t", {"int16", 2}},
      {"ushort", {"uint16", 2}}, {"unsigned short", {"uint16", 2}}, {"unsigned short int", {"uint16", 2}},
      {"uint16", {"uint16", 2}}, {"uint16_t", {"uint16", 2}},
      {"int", {"int32", 4}}, {"signed int", {"int32", 4}}, {"int32", {"int32", 4}}, {"int32_t", {"int32", 4}},
      {"uint", {"uint32", 4}}, {"unsigned int", {"uint32", 4}}, {"uint32", {"uint32", 4}}, {"uint32_t", {"uint32", 4}},
      {"longlong", {"int64", 8}}, {"long long", {"int64", 8}}, {"long long int", {"int64", 8}},
      {"signed long long", {"int64", 8}}, {"signed long long int", {"int64", 8}}, {"int64", {"int64", 8}},
      {"int64_t", {"int64", 8}}, {"ulonglong", {"uint64", 8}}, {"unsigned long long", {"uint64", 8}},
      {"unsigned long long int", {"uint64", 8}}, {"uint64", {"uint64", 8}}, {"uint64_t", {"uint64", 8}},
      {"float", {"float32", 4}}, {"double", {"float64", 8}}};
  const auto found = kTypes.find(lower(name));
  if (found == kTypes.end()) return std::nullopt;
  return found->second;
}

// Axis kinds that are not positions (teem's non-domain kinds): their sizes are values per pixel.
bool is_range_kind(const std::string& kind) {
  const std::string k = lower(kind);
  return !(k == "domain" || k == "space" || k == "time" || k == "???" || k == "none" || k.empty());
}

}  // namespace

// NRRD: "NRRD000N", "field: value" lines up to an empty line, then the data (or a data file).
ImageHeader nrrd_header(const FileBytes& file, const ReadLimits& limits) {
  static const char* kFormat = "NRRD";
  const TextHeader text = read_text_header(file, 1 << 20);
  if (text.lines.empty() || text.lines[0].rfind("NRRD000", 0) != 0) malformed(file.path(), kFormat, "no NRRD000N magic line");
  std::map<std::string, std::string> fields;
  for (size_t i = 1; i < text.lines.size(); ++i) {
    const std::string& line = text.lines[i];
    if (line[0] == '#') continue;
    const auto colon = line.find(": "), pair = line.find(":=");
    if (pair != std::string::npos && pair < colon) continue;  // a key/value pair, not a field
    if (colon == std::string::npos) malformed(file.path(), kFormat, "line \"" + line.substr(0, 60) + "\" is not a field");
    std::string name = lower(trimmed(line.substr(0, colon)));
    name.erase(std::remove(name.begin(), name.end(), ' '), name.end());  // "data file" = "datafile"
    fields[name] = trimmed(line.substr(colon + 2));
    if (name == "datafile" && lower(fields[name]).rfind("list", 0) == 0) break;  // file names follow
  }
  const auto field = [&](const std::string& name) {
    const auto found = fields.find(name);
    return found == fields.end() ? std::string() : found->second;
  };
  if (!text.ended_by_empty_line && field("datafile").empty())
    malformed(file.path(), kFormat, "no empty line after the header, and no data file");
  const auto dimension = integers(file.path(), kFormat, "dimension", field("dimension"));
  const auto sizes = integers(file.path(), kFormat, "sizes", field("sizes"));
  if (dimension.size() != 1 || dimension[0] < 1 || dimension[0] > 16 || sizes.size() != static_cast<size_t>(dimension[0]))
    malformed(file.path(), kFormat, "dimension \"" + field("dimension") + "\" and sizes \"" + field("sizes") + "\" disagree");
  const auto type = nrrd_type(field("type"));
  if (!type) malformed(file.path(), kFormat, "type \"" + field("type") + "\" is not one ITK reads");

  // Axes of a non-positional kind (RGB-color, vector, ...) hold the values of one pixel.
  std::vector<std::string> kinds;
  {
    std::istringstream in(field("kinds"));
    for (std::string kind; in >> kind;) kinds.push_back(kind);
  }
  std::vector<int64_t> dimensions, value_axes;
  for (size_t axis = 0; axis < sizes.size(); ++axis)
    (axis < kinds.size() && is_range_kind(kinds[axis]) ? value_axes : dimensions).push_back(sizes[axis]);
  const int64_t channels = as_count(product(value_axes));
  while (dimensions.size() < 2) dimensions.push_back(1);
  const ImageHeader header = medical_header(kFormat, dimensions, static_cast<int>(std::min<int64_t>(channels, 5)), type->pixel_type);
  check_image_shape(file.path(), dimensions, channels, limits);

  const uint64_t values = product(sizes);
  const uint64_t bytes = saturating_product(values, static_cast<uint64_t>(type->bytes));
  const std::string data_file = field("datafile");
  if (!data_file.empty()) {
    const std::string first_word = lower(data_file.substr(0, data_file.find(' ')));
    // Several data files (a LIST or a numbered pattern): ITK checks them as it reads.
    if (first_word == "list" || data_file.find('%') != std::string::npos) return header;
  }
  const fs::path data_path = data_file.empty() ? file.path() : data_file_of(file.path(), data_file);
  if (!data_file.empty() && !fs::exists(data_path))
    throw Error(data_path.string(), "is missing (the pixel data of " + file.path().string() + "); copy it beside the header");
  const FileBytes data(data_path);
  const uint64_t data_start = data_file.empty() ? text.end : 0;
  const uint64_t present = data.size() > data_start ? data.size() - data_start : 0;
  const std::string encoding = lower(field("encoding"));
  if (encoding == "raw") {
    const auto skip = integers(file.path(), kFormat, "byte skip", field("byteskip").empty() ? "0" : field("byteskip"));
    const uint64_t skipped = skip.size() == 1 && skip[0] > 0 ? static_cast<uint64_t>(skip[0]) : 0;
    require_raw_bytes(data_path, present, saturating_sum(bytes, skipped));
  } else if (encoding == "gzip" || encoding == "gz") {
    require_gzip_holds(data, data_start, bytes);
  } else if (encoding == "hex") {
    require_raw_bytes(data_path, present, saturating_product(bytes, 2));
  } else if (encoding == "ascii" || encoding == "text" || encoding == "txt") {
    require_raw_bytes(data_path, present, saturating_product(values, 2) - 1);
  } else if (encoding != "bzip2" && encoding != "bz2") {
    malformed(file.path(), kFormat, "encoding \"" + field("encoding") + "\" is not one ITK reads");
  }
  return header;
}

// MetaImage: "Key = Value" lines up to ElementDataFile, then the data (LOCAL) or a data file.
ImageHeader meta_header(const FileBytes& file, const ReadLimits& limits) {
  static const char* kFormat = "MetaImage";
  const TextHeader text = read_text_header(file, 1 << 20);
  std::map<std::string, std::string> fields;
  uint64_t header_end = 0;
  for (size_t i = 0; i < text.lines.size(); ++i) {
    const auto equals = text.lines[i].find('=');
    if (equals == std::string::npos) malformed(file.path(), kFormat, "line \"" + text.lines[i].substr(0, 60) + "\" is not Key = Value");
    const std::string key = trimmed(text.lines[i].substr(0, equals));
    fields[key] = trimmed(text.lines[i].substr(equals + 1));
    if (key == "ElementDataFile") {
      header_end = text.line_ends[i];
      break;
    }
  }
  const auto field = [&](const std::string& name) {
    const auto found = fields.find(name);
    return found == fields.end() ? std::string() : found->second;
  };
  if (header_end == 0) malformed(file.path(), kFormat, "no ElementDataFile line");
  const auto sizes = integers(file.path(), kFormat, "DimSize", field("DimSize"));
  const auto ndims = integers(file.path(), kFormat, "NDims", field("NDims").empty() ? std::to_string(sizes.size()) : field("NDims"));
  if (sizes.empty() || sizes.size() > 16 || ndims.size() != 1 || ndims[0] != static_cast<int64_t>(sizes.size()))
    malformed(file.path(), kFormat, "NDims \"" + field("NDims") + "\" and DimSize \"" + field("DimSize") + "\" disagree");
  static const std::map<std::string, ValueType> kTypes = {
      {"MET_UCHAR", {"uint8", 1}},   {"MET_CHAR", {"int8", 1}},     {"MET_USHORT", {"uint16", 2}},
      {"MET_SHORT", {"int16", 2}},   {"MET_UINT", {"uint32", 4}},   {"MET_INT", {"int32", 4}},
      {"MET_ULONG", {"uint32", 4}},  {"MET_LONG", {"int32", 4}},    {"MET_ULONG_LONG", {"uint64", 8}},
      {"MET_LONG_LONG", {"int64", 8}}, {"MET_FLOAT", {"float32", 4}}, {"MET_DOUBLE", {"float64", 8}}};
  // MET_<TYPE>_ARRAY stores the values of MET_<TYPE>.
  std::string element_type = field("ElementType");
  if (element_type.size() > 6 && element_type.compare(element_type.size() - 6, 6, "_ARRAY") == 0)
    element_type.resize(element_type.size() - 6);
  const auto type = kTypes.find(element_type);
  if (type == kTypes.end()) malformed(file.path(), kFormat, "ElementType \"" + field("ElementType") + "\" is not one ITK reads");
  const auto channel_count = integers(file.path(), kFormat, "ElementNumberOfChannels",
                                      field("ElementNumberOfChannels").empty() ? "1" : field("ElementNumberOfChannels"));
  const int64_t channels = channel_count.size() == 1 ? channel_count[0] : 0;
  std::vector<int64_t> dimensions = sizes;
  while (dimensions.size() < 2) dimensions.push_back(1);
  const ImageHeader header = medical_header(kFormat, dimensions, static_cast<int>(std::clamp<int64_t>(channels, 0, 5)),
                                            type->second.pixel_type);
  check_image_shape(file.path(), dimensions, channels, limits);

  const uint64_t values = saturating_product(product(sizes), static_cast<uint64_t>(channels));
  const uint64_t bytes = saturating_product(values, static_cast<uint64_t>(type->second.bytes));
  const std::string data_file = field("ElementDataFile");
  // Several data files (LIST or a numbered pattern): ITK checks them as it reads.
  if (lower(data_file).rfind("list", 0) == 0 || data_file.find('%') != std::string::npos) return header;
  const bool local = lower(data_file) == "local";
  const fs::path data_path = local ? file.path() : data_file_of(file.path(), data_file);
  if (!local && !fs::exists(data_path))
    throw Error(data_path.string(), "is missing (the pixel data of " + file.path().string() + "); copy it beside the header");
  const FileBytes data(data_path);
  const uint64_t data_start = local ? header_end : 0;
  const uint64_t present = data.size() > data_start ? data.size() - data_start : 0;
  const bool compressed = lower(field("CompressedData")) == "true";
  const bool binary = field("BinaryData").empty() || lower(field("BinaryData")) == "true";
  if (compressed) {
    uint64_t compressed_size = present;
    if (!field("CompressedDataSize").empty()) {
      const auto stated = integers(file.path(), kFormat, "CompressedDataSize", field("CompressedDataSize"));
      if (stated.size() != 1 || stated[0] < 0) malformed(file.path(), kFormat, "CompressedDataSize \"" + field("CompressedDataSize") + "\"");
      require_raw_bytes(data_path, present, static_cast<uint64_t>(stated[0]));
      compressed_size = static_cast<uint64_t>(stated[0]);
    }
    require_zlib_holds(data, data_start, compressed_size, bytes);
  } else if (!binary) {
    require_raw_bytes(data_path, present, saturating_product(values, 2) - 1);
  } else {
    // HeaderSize = -1: the data is the last bytes of the file, whatever comes before.
    const auto skip = integers(file.path(), kFormat, "HeaderSize", field("HeaderSize").empty() ? "0" : field("HeaderSize"));
    const uint64_t skipped = !local && skip.size() == 1 && skip[0] > 0 ? static_cast<uint64_t>(skip[0]) : 0;
    require_raw_bytes(data_path, present, saturating_sum(bytes, skipped));
  }
  return header;
}

std::string dicom_transfer_syntax(const FileBytes& file) {
  const std::string bytes = file.read(0, 132 + 8192);
  if (bytes.size() < 132 || bytes.compare(128, 4, "DICM") != 0) return "";
  const HeaderFields fields(bytes, false, file.path(), "DICOM");
  // Group 0002 is always explicit VR little endian: tag, VR, then a 2-byte length, or for
  // the VRs below 2 reserved bytes and a 4-byte length.
  for (size_t at = 132; at + 8 <= bytes.size();) {
    const uint16_t group = fields.u16(at), element = fields.u16(at + 2);
    if (group != 0x0002) break;
    const std::string vr = bytes.substr(at + 4, 2);
    const bool long_length = vr == "OB" || vr == "OW" || vr == "OF" || vr == "SQ" || vr == "UT" || vr == "UN" ||
                             vr == "OD" || vr == "OL" || vr == "OV" || vr == "UC" || vr == "UR" || vr == "SV" || vr == "UV";
    const uint64_t length = long_length ? fields.u32(at + 8) : fields.u16(at + 6);
    const size_t value_at = at + (long_length ? 12 : 8);
    if (value_at > bytes.size() || length > bytes.size() - value_at) break;
    if (element == 0x0010) return trimmed(bytes.substr(value_at, static_cast<size_t>(length)).c_str());
    at = value_at + static_cast<size_t>(length);
  }
  return "";
}

}  // namespace seg::io::detail
