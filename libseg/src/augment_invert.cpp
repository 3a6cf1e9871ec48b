// Invert augmentation: a film shown as its negative, as films stored MONOCHROME1 (bright air)
// and read as MONOCHROME2 show; labels unchanged.
#include <seg/augment_pipeline.h>

#include <ATen/ATen.h>

namespace seg {

Augmentation invert_augmentation() {
  Augmentation a;
  a.name = "invert";
  a.help = "probability that a film is shown as its negative, as films stored MONOCHROME1 and read wrongly show "
           "(labels unchanged; 0: off)";
  a.max_strength = 1;
  a.draw = [](const DrawShape& shape, double probability, at::Generator& gen) {
    return Draws{at::rand({shape.batch}, gen, at::TensorOptions().dtype(at::kFloat)) < probability};
  };
  // Each chosen image mirrored within its own range: its darkest and brightest values swap.
  a.apply = [](const at::Tensor& images, const Draws& draws, double) {
    const int64_t batch = images.size(0);
    const auto chosen = upload(draws.at(0), images.device()).view({batch, 1, 1, 1});
    const auto low = images.amin({1, 2, 3}, true), high = images.amax({1, 2, 3}, true);
    return at::where(chosen, low + high - images, images);
  };
  return a;
}

}  // namespace seg
