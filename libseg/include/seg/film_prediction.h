#pragma once
// A film's prediction kept at the networks' resolution and brought to the film's own grid only
// where it is asked for: a film of 2048 x 2048 pixels has 64 times as many pixels as a network
// output of 256 x 256, and most of them lie where every nearby network pixel says the same.
#include <seg/dataset.h>
#include <seg/framing.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace seg {

// Where the pixels along one axis of a film fall on a network output's grid: pixel i at
// scale * i + offset, in the output's pixels (align_corners = false).
struct AxisMap {
  double scale = 1.0, offset = 0.0;
};

// One network output over a film: logits (float C x h x w, CPU) and where the film's rows and
// columns fall on them. Its class scores at a film pixel are the logits sampled bilinearly
// there, coordinates held to the output's grid (grid_sample's border padding); with
// `weighted`, its weight there is how much of the output's grid the pixel's sample saw
// (grid_sample's zero padding of a grid of ones), as test-time warps are averaged.
struct PredictionTerm {
  at::Tensor logits;
  AxisMap rows, columns;
  int model = 0;  // which model of an ensemble the output came from
};

// The class probabilities of a film, as predict_probabilities defines them at full size: the
// mean over the models of each model's probabilities, which are the softmax of its one term, or
// with test-time warps the average of its terms' softmax weighted by what each saw. With one
// model and one term the scores are its logits (the same argmax). Reframing replaces a part
// of the film by a second prediction over that part.
class FilmPrediction {
 public:
  FilmPrediction(int64_t height, int64_t width, const ClassTable& classes, std::vector<PredictionTerm> terms,
                 int models, bool weighted);

  int64_t height() const { return height_; }
  int64_t width() const { return width_; }

  // The label map, H x W kByte of class values: the most probable class of each pixel. Where
  // all four network pixels around a film pixel agree (in every term that sees it), the
  // interpolation agrees too (a convex combination keeps the largest score largest); only the
  // other pixels are interpolated.
  at::Tensor labels() const;
  // The label map on a grid of the film's pixels: rows[i] x columns[j] (both ascending).
  at::Tensor labels_at(const std::vector<int64_t>& rows, const std::vector<int64_t>& columns) const;
  // C x H x W float: every class's probability at every pixel.
  at::Tensor probabilities() const;
  // The most probable channel at pixel (y, x) other than `excluded` (for the clean-up's dropped
  // pixels); the first on ties.
  int likeliest_channel_except(int64_t y, int64_t x, int excluded) const;

  // From now on the part `crop` of the film is predicted by `second`, a prediction over that
  // part alone (crop.height() x crop.width()): the reframing pass.
  void replace(const Crop& crop, FilmPrediction second);
  bool reframed() const { return second_ != nullptr; }

 private:
  struct Sampling;  // where requested rows and columns fall on each term's grid
  Sampling sampling(const std::vector<int64_t>& rows, const std::vector<int64_t>& columns) const;
  // The scores of every channel at the sampled pixel (i, j), into `scores` (`scratch`: room
  // this may use).
  void scores_at(const Sampling& s, size_t i, size_t j, float* scores, std::vector<float>& scratch) const;
  void render_labels(const std::vector<int64_t>& rows, const std::vector<int64_t>& columns, uint8_t* out,
                     int64_t stride) const;
  void render_probabilities(const std::vector<int64_t>& rows, const std::vector<int64_t>& columns, float* out,
                            int64_t plane, int64_t stride) const;

  int64_t height_, width_;
  std::vector<uint8_t> values_;  // class value of each channel
  std::vector<PredictionTerm> terms_;
  std::vector<std::vector<uint8_t>> agreed_;  // per term: the channel all 2 x 2 neighbours agree on, or kMixed
  int models_;
  bool weighted_;
  Crop crop_;
  std::shared_ptr<const FilmPrediction> second_;
};

}  // namespace seg
