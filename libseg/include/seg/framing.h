#pragma once
// Where the structures sit in the frame: measured on a model's training labels, and used to cut
// new images so that their structures sit alike (seg-segment's second pass).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>

namespace seg {

// The margins around the box of all structures (label values other than 0), each a fraction
// of the box's height (top, bottom) or width (left, right). JSRT's training split: about 0.09,
// 0.17, 0.14, 0.13 (the chest's box is about 200 of 256 pixels wide and high).
struct Framing {
  double top = 0.0, bottom = 0.0, left = 0.0, right = 0.0;
};

// A rectangle of an image: rows [top, bottom), columns [left, right).
struct Crop {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  int64_t height() const { return bottom - top; }
  int64_t width() const { return right - left; }
  bool operator==(const Crop& other) const;
};

// The box of the structures of one label map (integer H x W), or nothing when it has none.
std::optional<Crop> structure_box(const at::Tensor& labels);

// Each margin's median over the label maps (integer N x H x W) that hold any structure; the
// median, as a few films framed far off (a shoulder cut, a whole abdomen) should not move it.
// Throws seg::Error naming `source` (the data the maps came from) when no map holds a structure.
Framing measure_framing(const at::Tensor& labels, const std::string& source);

// The part of a height x width image that frames `box` as `framing` says, cut to the image
// (an image framed tighter than the training images is not widened).
Crop framed_crop(const Crop& box, const Framing& framing, int64_t height, int64_t width);

// `crop` grown along its shorter side (for the ratio) towards height / width = `aspect`, evenly
// on both sides (the odd pixel below or right), moved back inside a height x width image and
// cut to it: the network's input then shows more of the image instead of padding.
Crop grown_to_aspect(const Crop& crop, double aspect, int64_t height, int64_t width);

// Whether the structures a second look at `crop` found (their box `second`, in the crop's own
// coordinates; nothing: none) keep at least half the margin `framing` gives the first look's
// box `first` from every side of the crop that lies inside the height x width image. When they
// do not, the crop has cut through a structure the first look missed or saw smaller (a lung
// whited out by an effusion), and the first look should stand.
bool crop_holds_structures(const Crop& crop, const std::optional<Crop>& second, const Crop& first,
                           const Framing& framing, int64_t height, int64_t width);

}  // namespace seg
