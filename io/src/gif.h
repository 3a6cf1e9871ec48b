#pragma once
// A small GIF decoder: OpenCV 4.6 as packaged by Debian reads no GIF, and the SCR masks are GIFs.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace seg::io::detail {

struct GifImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> grey;  // row-major, the palette colour's luminance of each pixel
};

// Decodes the first frame of a GIF87a/GIF89a file (LZW, global or local palette,
// interlaced or not). Throws seg::Error naming `path` if the bytes are not a valid GIF.
GifImage decode_gif(const std::string& bytes, const std::filesystem::path& path);

}  // namespace seg::io::detail
