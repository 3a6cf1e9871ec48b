// GIF decoding for the SCR masks (OpenCV 4.6 on Debian is built without a GIF reader).
#include "gif.h"

#include <seg/error.h>

#include <array>
#include <cmath>

namespace seg::io::detail {
namespace {

class ByteReader {
 public:
  ByteReader(const std::string& bytes, const std::filesystem::path& path) : bytes_(bytes), path_(path) {}
  uint8_t u8() {
    if (pos_ >= bytes_.size()) truncated();
    return static_cast<uint8_t>(bytes_[pos_++]);
  }
  int u16() {
    const int low = u8();
    return low | (u8() << 8);
  }
  void skip(size_t n) {
    if (bytes_.size() - pos_ < n) truncated();
    pos_ += n;
  }
  bool at_end() const { return pos_ >= bytes_.size(); }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(path_.string(), "not a valid GIF (" + why + "); re-export the mask as GIF or PNG");
  }
  [[noreturn]] void truncated() const { fail("the file ends early, it is truncated"); }
  // The data sub-blocks that follow, concatenated.
  std::string sub_blocks() {
    std::string data;
    for (uint8_t n = u8(); n != 0; n = u8()) {
      if (bytes_.size() - pos_ < n) truncated();
      data.append(bytes_, pos_, n);
      pos_ += n;
    }
    return data;
  }

 private:
  const std::string& bytes_;
  const std::filesystem::path& path_;
  size_t pos_ = 0;
};

using Palette = std::vector<uint8_t>;  // grey level of each palette index

Palette read_palette(ByteReader& in, int entries) {
  Palette grey(static_cast<size_t>(entries));
  for (auto& g : grey) {
    const double r = in.u8(), gr = in.u8(), b = in.u8();
    g = static_cast<uint8_t>(std::lround(0.299 * r + 0.587 * gr + 0.114 * b));
  }
  return grey;
}

// Variable-width LZW as GIF uses it: codes packed least-significant bit first.
std::vector<uint8_t> lzw_decode(const std::string& data, int min_code_size, size_t pixel_count,
                                const ByteReader& in) {
  if (min_code_size < 2 || min_code_size > 8) in.fail("bad LZW code size " + std::to_string(min_code_size));
  constexpr int kMaxCodes = 4096;
  const int clear_code = 1 << min_code_size;
  const int end_code = clear_code + 1;
  std::array<int, kMaxCodes> prefix{};
  std::array<uint8_t, kMaxCodes> suffix{};
  std::array<uint8_t, kMaxCodes> first_byte{};
  for (int i = 0; i < clear_code; ++i) {
    prefix[static_cast<size_t>(i)] = -1;
    suffix[static_cast<size_t>(i)] = first_byte[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  }
  int code_size = min_code_size + 1;
  int next_code = clear_code + 2;
  int previous = -1;

  std::vector<uint8_t> out;
  out.reserve(pixel_count);
  std::vector<uint8_t> stack;
  auto emit = [&](int code) {
    stack.clear();
    for (int c = code; c >= 0; c = prefix[static_cast<size_t>(c)]) stack.push_back(suffix[static_cast<size_t>(c)]);
    out.insert(out.end(), stack.rbegin(), stack.rend());
  };

  size_t bit_pos = 0;
  const size_t total_bits = data.size() * 8;
  while (out.size() < pixel_count && bit_pos + static_cast<size_t>(code_size) <= total_bits) {
    int code = 0;
    for (int b = 0; b < code_size; ++b, ++bit_pos)
      code |= ((static_cast<uint8_t>(data[bit_pos / 8]) >> (bit_pos % 8)) & 1) << b;
    if (code == clear_code) {
      code_size = min_code_size + 1;
      next_code = clear_code + 2;
      previous = -1;
      continue;
    }
    if (code == end_code) break;
    if (previous < 0) {
      if (code >= clear_code) in.fail("LZW stream starts with an undefined code");
      emit(code);
      previous = code;
      continue;
    }
    uint8_t first;
    if (code < next_code) {
      first = first_byte[static_cast<size_t>(code)];
      emit(code);
    } else if (code == next_code) {
      first = first_byte[static_cast<size_t>(previous)];
      emit(previous);
      out.push_back(first);
    } else {
      in.fail("LZW code " + std::to_string(code) + " is undefined");
    }
    if (next_code < kMaxCodes) {
      prefix[static_cast<size_t>(next_code)] = previous;
      suffix[static_cast<size_t>(next_code)] = first;
      first_byte[static_cast<size_t>(next_code)] = first_byte[static_cast<size_t>(previous)];
      ++next_code;
      if (next_code == (1 << code_size) && code_size < 12) ++code_size;
    }
    previous = code;
  }
  if (out.size() < pixel_count) in.fail("the image data ends early, it is truncated");
  out.resize(pixel_count);
  return out;
}

// Row order of an interlaced frame: every 8th from 0, every 8th from 4, every 4th from 2,
// every 2nd from 1.
std::vector<int> row_order(int height, bool interlaced) {
  std::vector<int> rows;
  if (!interlaced) {
    for (int r = 0; r < height; ++r) rows.push_back(r);
    return rows;
  }
  const int starts[] = {0, 4, 2, 1}, steps[] = {8, 8, 4, 2};
  for (int pass = 0; pass < 4; ++pass)
    for (int r = starts[pass]; r < height; r += steps[pass]) rows.push_back(r);
  return rows;
}

}  // namespace

GifImage decode_gif(const std::string& bytes, const std::filesystem::path& path) {
  ByteReader in(bytes, path);
  if (bytes.size() < 13 || (bytes.compare(0, 6, "GIF87a") != 0 && bytes.compare(0, 6, "GIF89a") != 0))
    in.fail("no GIF87a/GIF89a signature");
  in.skip(6);
  GifImage image;
  image.width = in.u16();
  image.height = in.u16();
  const uint8_t screen_flags = in.u8();
  const uint8_t background = in.u8();
  in.skip(1);  // pixel aspect ratio
  Palette global;
  if (screen_flags & 0x80) global = read_palette(in, 2 << (screen_flags & 7));
  if (image.width <= 0 || image.height <= 0) in.fail("zero width or height");

  while (!in.at_end()) {
    const uint8_t block = in.u8();
    if (block == 0x3B) break;  // trailer before any image
    if (block == 0x21) {       // extension: label, then sub-blocks
      in.skip(1);
      in.sub_blocks();
      continue;
    }
    if (block != 0x2C) in.fail("unknown block type " + std::to_string(block));
    const int left = in.u16(), top = in.u16(), width = in.u16(), height = in.u16();
    const uint8_t frame_flags = in.u8();
    Palette palette = (frame_flags & 0x80) ? read_palette(in, 2 << (frame_flags & 7)) : global;
    if (palette.empty()) in.fail("no colour table");
    const int min_code_size = in.u8();
    const std::string data = in.sub_blocks();
    const auto indices = lzw_decode(data, min_code_size, static_cast<size_t>(width) * static_cast<size_t>(height), in);

    // The canvas starts as the background colour; the first frame is drawn on it.
    const uint8_t background_grey = background < global.size() ? global[background] : 0;
    image.grey.assign(static_cast<size_t>(image.width) * static_cast<size_t>(image.height), background_grey);
    const auto rows = row_order(height, (frame_flags & 0x40) != 0);
    for (int i = 0; i < height; ++i) {
      const int y = top + rows[static_cast<size_t>(i)];
      if (y >= image.height) continue;
      for (int x = 0; x < width && left + x < image.width; ++x) {
        const uint8_t index = indices[static_cast<size_t>(i) * static_cast<size_t>(width) + static_cast<size_t>(x)];
        if (index >= palette.size()) in.fail("pixel index beyond the colour table");
        image.grey[static_cast<size_t>(y) * static_cast<size_t>(image.width) + static_cast<size_t>(left + x)] = palette[index];
      }
    }
    return image;
  }
  in.fail("it holds no image");
}

}  // namespace seg::io::detail
