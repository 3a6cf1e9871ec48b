#pragma once
// The intensities a model was trained on, and the check that a film lies within reach of them:
// a model that normalises by its training set's mean and deviation sees a film of another bit
// depth on another scale (an 8-bit film given to a 16-bit model comes out all background).
#include <ATen/core/Tensor.h>

#include <atomic>
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

// seg-segment's check: one warning a run, for a film that lies far outside the range of a model
// that normalises by data-set statistics and records one; once it has warned, films are not
// checked again. Films may be checked from several threads at once.
class TrainingIntensityCheck {
 public:
  explicit TrainingIntensityCheck(const std::vector<Model>& models);
  // The warning for this film when it is far outside and the run has not warned yet, else "".
  std::string film(const at::Tensor& pixels, const std::string& film_name);

 private:
  std::vector<IntensityRange> ranges_;
  std::atomic<bool> warned_{false};
};

}  // namespace seg
