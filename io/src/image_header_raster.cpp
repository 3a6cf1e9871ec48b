// Headers of the picture formats OpenCV decodes: PNG, JPEG, TIFF and BMP.
#include <seg/error.h>

#include <algorithm>
#include <map>

#include "image_header_parse.h"

namespace seg::io::detail {

namespace {

ImageHeader picture_header(const char* format, int64_t width, int64_t height, int channels, const std::string& pixel_type) {
  ImageHeader header;
  header.format = format;
  header.width = width;
  header.height = height;
  header.channels = channels;
  header.pixel_type = pixel_type;
  header.has_spacing = false;  // read_image gives these formats no physical spacing
  return header;
}

// Bytes of `rows` rows of `width` pixels of `bits_per_pixel`, each row padded to whole bytes.
uint64_t packed_bytes(uint64_t width, uint64_t rows, uint64_t bits_per_pixel) {
  const uint64_t row_bits = saturating_product(width, bits_per_pixel);
  return saturating_product(row_bits / 8 + (row_bits % 8 != 0), rows);
}

}  // namespace

// PNG: the signature, IHDR, then every chunk's length and type (the data is skipped) up to
// IEND. The IDAT chunks' total is the compressed size.
ImageHeader png_header(const FileBytes& file, const ReadLimits& limits) {
  static const char* kFormat = "PNG";
  const std::string start = file.read(0, 33);
  if (start.size() < 8 || start.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) != 0) malformed(file.path(), kFormat, "no PNG signature");
  const HeaderFields fields(start, true, file.path(), kFormat);
  if (fields.u32(8) != 13 || start.compare(12, 4, "IHDR") != 0) malformed(file.path(), kFormat, "no IHDR chunk first");
  const uint32_t width = fields.u32(16), height = fields.u32(20);
  const int bit_depth = fields.u8(24), colour_type = fields.u8(25);
  if (width > 0x7fffffffu || height > 0x7fffffffu) malformed(file.path(), kFormat, "size above 2^31 - 1");
  int samples = 0;  // values per pixel as stored
  bool depth_ok = false;
  switch (colour_type) {
    case 0: samples = 1, depth_ok = bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8 || bit_depth == 16; break;
    case 2: samples = 3, depth_ok = bit_depth == 8 || bit_depth == 16; break;
    case 3: samples = 1, depth_ok = bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8; break;
    case 4: samples = 2, depth_ok = bit_depth == 8 || bit_depth == 16; break;
    case 6: samples = 4, depth_ok = bit_depth == 8 || bit_depth == 16; break;
    default: malformed(file.path(), kFormat, "colour type " + std::to_string(colour_type));
  }
  if (!depth_ok) malformed(file.path(), kFormat, "bit depth " + std::to_string(bit_depth) + " with colour type " + std::to_string(colour_type));

  uint64_t offset = 8, idat_bytes = 0;
  bool transparency = false, ended = false;
  while (!ended) {
    const std::string chunk = file.read(offset, 8);
    if (chunk.size() < 8) truncated(file.path(), "it ends without the IEND chunk");
    const HeaderFields chunk_fields(chunk, true, file.path(), kFormat);
    const uint64_t length = chunk_fields.u32(0);
    if (length > 0x7fffffffu) malformed(file.path(), kFormat, "chunk length above 2^31 - 1");
    const std::string type = chunk.substr(4, 4);
    if (offset + 12 + length > file.size()) truncated(file.path(), "its " + type + " chunk is cut short, and IEND is missing");
    if (type == "IDAT") idat_bytes += length;
    if (type == "tRNS") transparency = true;
    ended = type == "IEND";
    offset += 12 + length;
  }
  // A palette image decodes to colours (and alpha where tRNS gives some entries one).
  const int channels = colour_type == 3 ? (transparency ? 4 : 3) : samples;
  const ImageHeader header = picture_header(kFormat, width, height, channels, bit_depth == 16 ? "uint16" : "uint8");
  check_image_shape(file.path(), {header.width, header.height}, header.channels, limits);
  // The filtered rows without their filter bytes: a lower bound for interlaced images too.
  require_expandable(file.path(), idat_bytes, packed_bytes(width, height, static_cast<uint64_t>(samples * bit_depth)));
  return header;
}

// JPEG: the markers up to the first scan (SOF gives the size), then the end-of-image marker
// searched backwards from the end (FF D9 cannot occur inside entropy-coded data).
ImageHeader jpeg_header(const FileBytes& file, const ReadLimits& limits) {
  static const char* kFormat = "JPEG";
  const std::string start = file.read(0, 2);
  if (start != "\xff\xd8") malformed(file.path(), kFormat, "no start-of-image marker");
  uint64_t offset = 2, scan_start = 0;
  int64_t width = -1, height = -1;
  int components = 0, precision = 0;
  while (scan_start == 0) {
    std::string marker = file.read(offset, 4);
    // Fill bytes (FF FF ...) may precede a marker.
    while (marker.size() >= 2 && static_cast<unsigned char>(marker[0]) == 0xff && static_cast<unsigned char>(marker[1]) == 0xff) {
      ++offset;
      marker = file.read(offset, 4);
    }
    if (marker.size() < 2) truncated(file.path(), "it ends before its first scan");
    if (static_cast<unsigned char>(marker[0]) != 0xff) malformed(file.path(), kFormat, "a marker was expected at byte " + std::to_string(offset));
    const int code = static_cast<unsigned char>(marker[1]);
    if (code == 0x01 || (code >= 0xd0 && code <= 0xd8)) {  // markers without a length
      offset += 2;
      continue;
    }
    if (code == 0xd9) malformed(file.path(), kFormat, "it ends before its first scan");
    if (marker.size() < 4) truncated(file.path(), "it ends inside a marker");
    const uint64_t length = HeaderFields(marker, true, file.path(), kFormat).u16(2);
    if (length < 2) malformed(file.path(), kFormat, "segment length " + std::to_string(length));
    const bool frame = code >= 0xc0 && code <= 0xcf && code != 0xc4 && code != 0xc8 && code != 0xcc;
    if (frame) {
      const std::string sof = file.read(offset + 4, 6);
      const HeaderFields fields(sof, true, file.path(), kFormat);
      precision = fields.u8(0);
      height = fields.u16(1);
      width = fields.u16(3);
      components = fields.u8(5);
    }
    if (code == 0xda) scan_start = offset;
    offset += 2 + length;
    if (offset > file.size()) truncated(file.path(), "a segment runs past the end of the file");
  }
  if (width < 0) malformed(file.path(), kFormat, "no frame header before the first scan");
  if (height == 0) malformed(file.path(), kFormat, "height 0 (a DNL marker), which is not supported");
  if (components != 1 && components != 3 && components != 4) malformed(file.path(), kFormat, std::to_string(components) + " components");
  // Four components are CMYK or YCCK, which decode to colour.
  const ImageHeader header = picture_header(kFormat, width, height, components == 1 ? 1 : 3, precision > 8 ? "uint16" : "uint8");
  check_image_shape(file.path(), {header.width, header.height}, header.channels, limits);

  // Backwards from the end, one block at a time (each overlapping the next by a byte).
  constexpr uint64_t kBlock = 1 << 16;
  bool found = false;
  for (uint64_t end = file.size(); end > scan_start + 1 && !found;) {
    const uint64_t begin = std::max(scan_start, end > kBlock ? end - kBlock : 0);
    const std::string block = file.read(begin, static_cast<size_t>(end - begin));
    found = block.rfind("\xff\xd9") != std::string::npos;
    end = begin + 1;
    if (begin == scan_start) break;
  }
  if (!found) truncated(file.path(), "it ends without the JPEG end-of-image marker");
  return header;
}

// BMP: the file header, the DIB header and (for 8 bits or fewer) the palette.
ImageHeader bmp_header(const FileBytes& file, const ReadLimits& limits) {
  static const char* kFormat = "BMP";
  const std::string start = file.read(0, 14 + 124);
  if (start.size() < 2 || start.compare(0, 2, "BM") != 0) malformed(file.path(), kFormat, "no BM signature");
  const HeaderFields fields(start, false, file.path(), kFormat);
  const uint64_t data_offset = fields.u32(10);
  const uint32_t info_size = fields.u32(14);
  int64_t width, height;
  int bits, compression = 0;
  uint32_t palette_entries = 0, alpha_mask = 0;
  size_t palette_entry_size = 4;
  if (info_size == 12) {
    width = fields.u16(18);
    height = fields.u16(20);
    bits = fields.u16(24);
    palette_entry_size = 3;
  } else if (info_size >= 40 && info_size <= 124) {
    width = fields.i32(18);
    height = fields.i32(22);
    bits = fields.u16(28);
    compression = static_cast<int>(fields.u32(30));
    palette_entries = fields.u32(46);
    if (info_size >= 56) alpha_mask = fields.u32(14 + 52);
  } else {
    malformed(file.path(), kFormat, "DIB header of " + std::to_string(info_size) + " bytes");
  }
  height = height < 0 ? -height : height;  // negative: stored top-down
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
    malformed(file.path(), kFormat, std::to_string(bits) + " bits per pixel");
  const bool run_length = compression == 1 || compression == 2;
  if (compression != 0 && compression != 3 && compression != 6 && !(compression == 1 && bits == 8) && !(compression == 2 && bits == 4))
    malformed(file.path(), kFormat, "compression " + std::to_string(compression) + " with " + std::to_string(bits) + " bits per pixel");

  int channels = 3;
  if (bits <= 8) {
    // A grey palette decodes to grey, any other to colour.
    const uint32_t entries = palette_entries == 0 || palette_entries > (1u << bits) ? (1u << bits) : palette_entries;
    const std::string palette = file.read(14 + info_size, entries * palette_entry_size);
    bool grey = true;
    for (size_t i = 0; i + 2 < palette.size() && grey; i += palette_entry_size)
      grey = palette[i] == palette[i + 1] && palette[i] == palette[i + 2];
    channels = grey ? 1 : 3;
  } else if (bits == 32 && (compression == 3 || compression == 6) && alpha_mask != 0) {
    channels = 4;
  }
  const ImageHeader header = picture_header(kFormat, width, height, channels, "uint8");
  check_image_shape(file.path(), {header.width, header.height}, header.channels, limits);
  if (data_offset > file.size()) truncated(file.path(), "its pixel data would start past the end of the file");
  if (!run_length) {
    const uint64_t row_bytes = (saturating_product(static_cast<uint64_t>(width), static_cast<uint64_t>(bits)) + 31) / 32 * 4;
    require_raw_bytes(file.path(), file.size() - data_offset, saturating_product(row_bytes, static_cast<uint64_t>(height)));
  }
  return header;
}

namespace {

// One IFD entry of a TIFF: its type's size, count, and where its values are.
struct TiffEntry {
  int type = 0;
  uint64_t count = 0;
  uint64_t value_offset = 0;  // in the file, where the values do not fit the entry
  std::string inline_bytes;   // the entry's value field, where they do
};

class TiffReader {
 public:
  TiffReader(const FileBytes& file, bool big_endian, bool big_tiff) : file_(file), big_endian_(big_endian), big_tiff_(big_tiff) {}

  static size_t type_size(int type) {
    switch (type) {
      case 1: case 2: case 6: case 7: return 1;  // BYTE, ASCII, SBYTE, UNDEFINED
      case 3: case 8: return 2;                  // SHORT, SSHORT
      case 4: case 9: case 11: case 13: return 4;  // LONG, SLONG, FLOAT, IFD
      case 5: case 10: case 12: case 16: case 17: case 18: return 8;  // RATIONAL, DOUBLE, LONG8, IFD8
      default: return 0;
    }
  }

  // The values of an integer entry (BYTE, SHORT, LONG, LONG8), `first` to `first + count`.
  std::vector<uint64_t> values(const TiffEntry& entry, uint64_t first, uint64_t count) const {
    const size_t size = type_size(entry.type);
    const bool integer = entry.type == 1 || entry.type == 3 || entry.type == 4 || entry.type == 6 || entry.type == 7 ||
                         entry.type == 8 || entry.type == 9 || entry.type == 13 || entry.type == 16 || entry.type == 17 ||
                         entry.type == 18;
    if (!integer) malformed(file_.path(), "TIFF", "an integer tag has type " + std::to_string(entry.type));
    std::string bytes;
    if (entry.value_offset == kInline) {
      bytes = entry.inline_bytes.substr(std::min<size_t>(entry.inline_bytes.size(), static_cast<size_t>(first) * size));
    } else {
      bytes = file_.read(entry.value_offset + first * size, static_cast<size_t>(count * size));
    }
    if (bytes.size() < count * size) truncated(file_.path(), "a tag's values run past the end of the file");
    const HeaderFields fields(bytes, big_endian_, file_.path(), "TIFF");
    std::vector<uint64_t> out(static_cast<size_t>(count));
    for (size_t i = 0; i < out.size(); ++i) out[i] = fields.unsigned_at(i * size, size);
    return out;
  }

  uint64_t value(const TiffEntry& entry) const { return values(entry, 0, 1).at(0); }

  static constexpr uint64_t kInline = ~uint64_t{0};

  bool big_endian() const { return big_endian_; }
  bool big_tiff() const { return big_tiff_; }

 private:
  const FileBytes& file_;
  bool big_endian_, big_tiff_;
};

}  // namespace

// TIFF (and BigTIFF): the first IFD's size, sample and layout tags, and the strips' or
// tiles' offsets and byte counts, which must lie inside the file.
ImageHeader tiff_header(const FileBytes& file, const ReadLimits& limits) {
  static const char* kFormat = "TIFF";
  const std::string start = file.read(0, 16);
  if (start.size() < 8) malformed(file.path(), kFormat, "header cut short");
  const bool big_endian = start.compare(0, 2, "MM") == 0;
  if (!big_endian && start.compare(0, 2, "II") != 0) malformed(file.path(), kFormat, "no byte-order mark");
  const HeaderFields fields(start, big_endian, file.path(), kFormat);
  const uint16_t magic = fields.u16(2);
  if (magic != 42 && magic != 43) malformed(file.path(), kFormat, "magic number " + std::to_string(magic));
  const bool big_tiff = magic == 43;
  if (big_tiff && (fields.u16(4) != 8 || fields.u16(6) != 0)) malformed(file.path(), kFormat, "BigTIFF offset size");
  const uint64_t ifd = big_tiff ? fields.u64(8) : fields.u32(4);
  const size_t count_size = big_tiff ? 8 : 2, entry_size = big_tiff ? 20 : 12, value_size = big_tiff ? 8 : 4;
  const std::string count_bytes = file.read(ifd, count_size);
  if (count_bytes.size() < count_size) truncated(file.path(), "its first directory lies past the end of the file");
  const uint64_t entries = HeaderFields(count_bytes, big_endian, file.path(), kFormat).unsigned_at(0, count_size);
  if (entries == 0 || entries > 4096) malformed(file.path(), kFormat, std::to_string(entries) + " directory entries");
  const std::string table = file.read(ifd + count_size, static_cast<size_t>(entries * entry_size));
  if (table.size() < entries * entry_size) truncated(file.path(), "its first directory runs past the end of the file");
  const HeaderFields table_fields(table, big_endian, file.path(), kFormat);
  const TiffReader reader(file, big_endian, big_tiff);

  std::map<int, TiffEntry> tags;
  for (size_t i = 0; i < entries; ++i) {
    const size_t at = i * entry_size;
    TiffEntry entry;
    const int tag = table_fields.u16(at);
    entry.type = table_fields.u16(at + 2);
    entry.count = big_tiff ? table_fields.u64(at + 4) : table_fields.u32(at + 4);
    const size_t size = TiffReader::type_size(entry.type);
    const size_t value_at = at + (big_tiff ? 12 : 8);
    if (size != 0 && entry.count <= value_size / size) {
      entry.value_offset = TiffReader::kInline;
      entry.inline_bytes = table.substr(value_at, value_size);
    } else {
      entry.value_offset = table_fields.unsigned_at(value_at, value_size);
      if (size == 0 || entry.count > file.size() / size) continue;  // an unknown type, or more values than the file holds
    }
    tags[tag] = entry;
  }
  const auto scalar = [&](int tag, uint64_t fallback) {
    const auto found = tags.find(tag);
    return found == tags.end() || found->second.count == 0 ? fallback : reader.value(found->second);
  };
  const uint64_t width = scalar(256, 0), height = scalar(257, 0);
  if (tags.count(256) == 0 || tags.count(257) == 0) malformed(file.path(), kFormat, "no image width or length");
  if (width > (uint64_t{1} << 32) || height > (uint64_t{1} << 32)) malformed(file.path(), kFormat, "size above 2^32");
  const uint64_t samples = scalar(277, 1), bits = scalar(258, 1), format = scalar(339, 1);
  const uint64_t compression = scalar(259, 1), planar = scalar(284, 1), photometric = scalar(262, 1);
  if (samples == 0 || samples > 16) malformed(file.path(), kFormat, std::to_string(samples) + " samples per pixel");
  if (bits == 0 || bits > 64) malformed(file.path(), kFormat, std::to_string(bits) + " bits per sample");
  // Channels as decoded: grey or colour (a palette, CMYK and YCbCr decode to colour), plus
  // alpha where there are more samples than the colour needs (ExtraSamples).
  const bool colour = photometric == 2 || photometric == 3 || photometric == 5 || photometric == 6 ||
                      (photometric > 6 && samples >= 3);
  const uint64_t colour_samples = photometric == 3 ? 1 : photometric == 5 ? 4 : colour ? 3 : 1;
  const int channels = (colour ? 3 : 1) + (samples > colour_samples ? 1 : 0);
  std::string pixel_type = "uint8";
  if (bits > 8) {
    const int bytes = bits <= 16 ? 2 : bits <= 32 ? 4 : 8;
    pixel_type = pixel_type_name(format == 3, format == 2, bytes);
  } else if (format == 2 && bits == 8) {
    pixel_type = "int8";
  }
  const ImageHeader header = picture_header(kFormat, static_cast<int64_t>(width), static_cast<int64_t>(height), channels, pixel_type);
  check_image_shape(file.path(), {header.width, header.height},
                    samples > colour_samples + 1 ? static_cast<int64_t>(samples) : channels, limits);

  // The pixel data: strips of RowsPerStrip rows, or tiles, one set per sample when planar.
  const uint64_t planes = planar == 2 ? samples : 1, samples_per_plane = planar == 2 ? 1 : samples;
  const bool tiled = tags.count(324) != 0 || tags.count(322) != 0;
  const int offsets_tag = tiled ? 324 : 273, counts_tag = tiled ? 325 : 279;
  uint64_t pieces, bytes_declared;
  if (tiled) {
    const uint64_t tile_width = scalar(322, 0), tile_height = scalar(323, 0);
    if (tile_width == 0 || tile_height == 0) malformed(file.path(), kFormat, "tile size 0");
    const uint64_t across = (width + tile_width - 1) / tile_width, down = (height + tile_height - 1) / tile_height;
    pieces = saturating_product(saturating_product(across, down), planes);
    bytes_declared = saturating_product(packed_bytes(tile_width, tile_height, bits * samples_per_plane), pieces);
  } else {
    const uint64_t rows_per_strip = std::max<uint64_t>(1, std::min(scalar(278, height), height));
    pieces = saturating_product((height + rows_per_strip - 1) / rows_per_strip, planes);
    bytes_declared = saturating_product(packed_bytes(width, height, bits * samples_per_plane), planes);
  }
  const auto offsets = tags.find(offsets_tag), counts = tags.find(counts_tag);
  if (offsets == tags.end() || counts == tags.end()) malformed(file.path(), kFormat, "no strip or tile offsets and byte counts");
  if (offsets->second.count < pieces || counts->second.count < pieces)
    malformed(file.path(), kFormat, std::to_string(pieces) + " strips or tiles declared but fewer located");
  uint64_t stored = 0;
  constexpr uint64_t kBatch = 8192;
  for (uint64_t first = 0; first < pieces; first += kBatch) {
    const uint64_t n = std::min(kBatch, pieces - first);
    const auto piece_offsets = reader.values(offsets->second, first, n);
    const auto piece_counts = reader.values(counts->second, first, n);
    for (size_t i = 0; i < n; ++i) {
      if (piece_offsets[i] > file.size() || piece_counts[i] > file.size() - piece_offsets[i])
        truncated(file.path(), "a strip or tile of its pixel data runs past the end of the file");
      stored += piece_counts[i];
    }
  }
  if (compression == 1) require_raw_bytes(file.path(), stored, bytes_declared);
  if (compression == 8 || compression == 32946) require_expandable(file.path(), stored, bytes_declared);
  return header;
}

}  // namespace seg::io::detail
