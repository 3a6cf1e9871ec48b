#pragma once
// Image files built byte by byte (PNG with zlib, TIFF, NIfTI-1, gzip), for the tests that
// need what our writers do not make: alpha channels, colour, lying or cut headers.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace seg::testing {

inline void put_be32(std::string& to, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) to.push_back(static_cast<char>(v >> shift & 0xff));
}

inline void put_le(std::string& to, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) to.push_back(static_cast<char>(v >> (8 * i) & 0xff));
}

// zlib's deflate of `data` (format: 15 = zlib, 31 = gzip).
inline std::string deflated(const std::string& data, int window_bits = 15) {
  z_stream stream{};
  if (deflateInit2(&stream, 9, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

inline std::string gzipped(const std::string& data) { return deflated(data, 31); }

inline std::string png_chunk(const std::string& type, const std::string& data) {
  std::string chunk;
  put_be32(chunk, static_cast<uint32_t>(data.size()));
  chunk += type + data;
  const std::string crc_input = type + data;
  put_be32(chunk, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(crc_input.data()), static_cast<uInt>(crc_input.size()))));
  return chunk;
}

// A PNG of 8-bit samples: `samples` holds height rows of width * (values per pixel) bytes;
// colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA.
inline std::string png_file(uint32_t width, uint32_t height, int colour_type, const std::string& samples) {
  std::string ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr += std::string{8, static_cast<char>(colour_type), 0, 0, 0};
  const size_t row_bytes = height ? samples.size() / height : 0;
  std::string filtered;
  for (uint32_t row = 0; row < height; ++row) filtered += '\0' + samples.substr(row * row_bytes, row_bytes);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", deflated(filtered)) + png_chunk("IEND", "");
}

// A little-endian, uncompressed, one-strip TIFF of 8-bit samples; `extra_samples` of them
// per pixel are alpha (ExtraSamples = 2, unassociated).
inline std::string tiff_file(uint32_t width, uint32_t height, int samples_per_pixel, int extra_samples, const std::string& samples) {
  struct Entry {
    uint16_t tag, type;
    uint32_t count, value;
  };
  const int photometric = samples_per_pixel - extra_samples >= 3 ? 2 : 1;
  std::vector<Entry> entries = {{256, 4, 1, width},
                                {257, 4, 1, height},
                                {258, 3, 1, 8},
                                {259, 3, 1, 1},
                                {262, 3, 1, static_cast<uint32_t>(photometric)},
                                {273, 4, 1, 0},  // the strip offset, set below
                                {277, 3, 1, static_cast<uint32_t>(samples_per_pixel)},
                                {278, 4, 1, height},
                                {279, 4, 1, static_cast<uint32_t>(samples.size())}};
  if (extra_samples > 0) entries.push_back({338, 3, 1, 2});
  const uint32_t ifd_size = 2 + 12 * static_cast<uint32_t>(entries.size()) + 4;
  entries[5].value = 8 + ifd_size;
  std::string out("II*\0", 4);
  put_le(out, 8, 4);
  put_le(out, entries.size(), 2);
  for (const auto& e : entries) {
    put_le(out, e.tag, 2);
    put_le(out, e.type, 2);
    put_le(out, e.count, 4);
    put_le(out, e.value, e.type == 3 ? 2 : 4);
    if (e.type == 3) put_le(out, 0, 2);
  }
  put_le(out, 0, 4);
  return out + samples;
}

// A NIfTI-1 header (352 bytes, single file, data right after) with dim[0] = dims.size().
inline std::string nifti1_header(const std::vector<int16_t>& dims, int16_t datatype, int16_t bitpix) {
  std::string header(352, '\0');
  auto put = [&](size_t offset, const void* value, size_t size) { std::memcpy(&header[offset], value, size); };
  const int32_t size = 348;
  put(0, &size, 4);
  const auto rank = static_cast<int16_t>(dims.size());
  put(40, &rank, 2);
  for (size_t d = 0; d < 7; ++d) {
    const int16_t extent = d < dims.size() ? dims[d] : 1;
    put(42 + 2 * d, &extent, 2);
  }
  put(70, &datatype, 2);
  put(72, &bitpix, 2);
  const float one = 1.0f, offset = 352.0f;
  for (size_t d = 0; d < 4; ++d) put(76 + 4 * d, &one, 4);
  put(108, &offset, 4);
  put(344, "n+1\0", 4);
  return header;
}

}  // namespace seg::testing
