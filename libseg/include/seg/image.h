#pragma once
// A 2D image or label map in memory, with its physical geometry.
#include <ATen/core/Tensor.h>

#include <array>
#include <string>

namespace seg {

// Physical geometry of a 2D pixel grid, ITK conventions: index (col, row) maps to
// origin + direction * (spacing .* index), in mm.
struct Geometry {
  std::array<double, 2> spacing{1.0, 1.0};
  std::array<double, 2> origin{0.0, 0.0};
  std::array<double, 4> direction{1.0, 0.0, 0.0, 1.0};  // row-major 2x2
  bool has_spacing = false;  // false: the file carried no physical spacing (plain PNG)
};

// pixels: H x W (one channel) or H x W x C (colour, C = 3 or 4), on the CPU.
// dtype: kByte (uint8), kShort (int16), kInt (uint16 is widened to int32: LibTorch 1.13
// has no uint16), or kFloat. `pixel_type` names the type the file stored ("uint8",
// "uint16", "int16", "float32", ...), so a writer can keep it.
struct Image {
  at::Tensor pixels;
  Geometry geometry;
  std::string pixel_type;

  int64_t height() const { return pixels.size(0); }
  int64_t width() const { return pixels.size(1); }
  int64_t channels() const { return pixels.dim() == 3 ? pixels.size(2) : 1; }
};

}  // namespace seg
