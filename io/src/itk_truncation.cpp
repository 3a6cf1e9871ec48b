// ITK reads a NIfTI or MetaImage file whose pixel data is cut short without complaint, so
// these checks compare the bytes present with the bytes the header promises.
#include <seg/error.h>
#include <seg/fs.h>

#include <zlib.h>

#include <cstring>
#include <sstream>

#include "io_internal.h"

namespace seg::io::detail {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void truncated(const fs::path& path, uint64_t present, uint64_t promised) {
  throw Error(path.string(), "is truncated: its header promises " + std::to_string(promised) + " bytes but only " +
                                 std::to_string(present) + " are there; copy or export the file again");
}

// The whole decompressed content of a gzip file (stops quietly where the stream is cut).
std::string gunzip(const fs::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw Error(path.string(), "cannot be opened for reading");
  std::string out;
  char buffer[1 << 16];
  for (int n; (n = gzread(file, buffer, sizeof buffer)) > 0;) out.append(buffer, static_cast<size_t>(n));
  gzclose(file);
  return out;
}

template <typename T>
T field(const std::string& bytes, size_t offset, bool swap) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  if (swap) {
    auto* p = reinterpret_cast<unsigned char*>(&value);
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(p[i], p[sizeof(T) - 1 - i]);
  }
  return value;
}

void check_nifti(const fs::path& path, bool compressed) {
  const std::string bytes = compressed ? gunzip(path) : read_file(path);
  if (bytes.size() < 348) truncated(path, bytes.size(), 348);
  const int32_t header_size = field<int32_t>(bytes, 0, false);
  const bool swap = header_size != 348 && header_size != 540;
  const bool nifti2 = field<int32_t>(bytes, 0, swap) == 540;
  uint64_t voxels = 1, offset;
  int bits;
  if (nifti2) {
    if (bytes.size() < 540) truncated(path, bytes.size(), 540);
    const auto dims = field<int64_t>(bytes, 16, swap);
    for (int d = 1; d <= dims && d < 8; ++d) voxels *= static_cast<uint64_t>(field<int64_t>(bytes, 16 + 8 * static_cast<size_t>(d), swap));
    bits = field<int16_t>(bytes, 14, swap);
    offset = static_cast<uint64_t>(field<int64_t>(bytes, 168, swap));
  } else {
    const auto dims = field<int16_t>(bytes, 40, swap);
    for (int d = 1; d <= dims && d < 8; ++d) voxels *= static_cast<uint64_t>(field<int16_t>(bytes, 40 + 2 * static_cast<size_t>(d), swap));
    bits = field<int16_t>(bytes, 72, swap);
    offset = static_cast<uint64_t>(field<float>(bytes, 108, swap));
  }
  const uint64_t promised = offset + voxels * static_cast<uint64_t>(bits) / 8;
  if (bytes.size() < promised) truncated(path, bytes.size(), promised);
}

// MetaImage: "Key = Value" lines up to "ElementDataFile = ...", then the data (LOCAL).
void check_meta(const fs::path& path) {
  const std::string bytes = read_file(path);
  std::istringstream in(bytes);
  std::string line, data_file;
  uint64_t voxels = 1, element_size = 1, channels = 1, compressed_size = 0;
  bool compressed = false;
  size_t header_end = 0;
  while (std::getline(in, line)) {
    header_end += line.size() + 1;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto trim = [](std::string s) {
      const auto a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
      return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
    };
    const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    std::istringstream values(value);
    if (key == "DimSize") {
      voxels = 1;
      for (uint64_t v; values >> v;) voxels *= v;
    } else if (key == "ElementNumberOfChannels") {
      values >> channels;
    } else if (key == "CompressedData") {
      compressed = value == "True" || value == "true";
    } else if (key == "CompressedDataSize") {
      values >> compressed_size;
    } else if (key == "ElementType") {
      for (const auto& [name, size] : std::initializer_list<std::pair<const char*, uint64_t>>{
               {"MET_UCHAR", 1}, {"MET_CHAR", 1}, {"MET_USHORT", 2}, {"MET_SHORT", 2}, {"MET_UINT", 4},
               {"MET_INT", 4}, {"MET_FLOAT", 4}, {"MET_ULONG", 8}, {"MET_LONG", 8}, {"MET_DOUBLE", 8},
               {"MET_ULONG_LONG", 8}, {"MET_LONG_LONG", 8}})
        if (value == name) element_size = size;
    } else if (key == "ElementDataFile") {
      data_file = value;
      break;
    }
  }
  const uint64_t promised = compressed ? compressed_size : voxels * element_size * channels;
  if (promised == 0) return;  // compressed without a stated size: nothing to compare
  if (data_file == "LOCAL") {
    const uint64_t present = bytes.size() > header_end ? bytes.size() - header_end : 0;
    if (present < promised) truncated(path, present, promised);
  } else if (!data_file.empty() && data_file.find('%') == std::string::npos && data_file != "LIST") {
    const fs::path raw = path.parent_path() / data_file;
    if (!fs::exists(raw)) throw Error(raw.string(), "is missing (the pixel data of " + path.string() + ")");
    const uint64_t present = fs::file_size(raw);
    if (present < promised) truncated(raw, present, promised);
  }
}

}  // namespace

void check_not_truncated(const fs::path& path) {
  const std::string ext = full_extension(path);
  if (ext == ".nii" || ext == ".nii.gz") check_nifti(path, ext == ".nii.gz");
  if (ext == ".mha" || ext == ".mhd") check_meta(path);
}

}  // namespace seg::io::detail
