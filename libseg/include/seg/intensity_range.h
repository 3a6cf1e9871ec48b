#pragma once
// The intensities a model was trained on, and the check that a film lies within reach of them:
// a model that normalises by its training set's mean and deviation sees a film of another bit
// depth on another scale (an 8-bit film given to a 16-bit model comes out all background).
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace seg {

struct Model;

// The 0.5 and 99.5 percentiles of the training images' pixels.
struct IntensityRange {
  double low = 0;
  double high = 0;
};

// The range of `images` (any shape, any numeric type), from an evenly strided sample of at
// most 2^20 pixels.
IntensityRange training_intensity_range(const at::Tensor& images);

// A film lies far outside a training range (low, high; span = high - low) when the 99.5
// percentile of a strided sample of its pixels is below low + span / 4 or above low + 4 * span.
// Returns the warning naming `film_name`, or "" when it lies within reach or the range is empty.
std::string intensity_mismatch(const at::Tensor& film, const std::string& film_name, const IntensityRange& trained);

// seg-segment's check of each film against the ranges of its models that normalise by data-set
// statistics and record one. It holds no state, so workers may check films at once; the tool
// prints the first warning in input order, so which film is named does not depend on timing.
class TrainingIntensityCheck {
 public:
  explicit TrainingIntensityCheck(const std::vector<Model>& models);
  // The warning for this film when it lies far outside a model's range, else "".
  std::string film(const at::Tensor& pixels, const std::string& film_name) const;

 private:
  std::vector<IntensityRange> ranges_;
};

}  // namespace seg
