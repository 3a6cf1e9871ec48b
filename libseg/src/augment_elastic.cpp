// Elastic augmentation: a small smooth warp on top of the affine one.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>

#include <torch/torch.h>

#include <limits>

namespace seg {

at::Tensor random_elastic_draws(int64_t batch, double strength, at::Generator& gen) {
  return at::randn({batch, 2, 4, 4}, gen, at::kFloat) * strength;
}

at::Tensor elastic_displacement(const at::Tensor& draws, int64_t height, int64_t width, const at::Device& device) {
  namespace F = torch::nn::functional;
  return F::interpolate(upload(draws, device), F::InterpolateFuncOptions()
                                              .size(std::vector<int64_t>{height, width})
                                              .mode(torch::kBicubic)
                                              .align_corners(true))
      .permute({0, 2, 3, 1})
      .contiguous();
}

Augmentation elastic_augmentation() {
  Augmentation a;
  a.name = "elastic";
  a.help = "small elastic warp: sigma of control-point offsets, 2 = image width (0: off; 0.02 is about 2.5 px at 256)";
  a.max_strength = std::numeric_limits<double>::infinity();
  a.geometric = true;
  a.draw = [](const DrawShape& shape, double strength, at::Generator& gen) {
    return Draws{random_elastic_draws(shape.batch, strength, gen)};
  };
  a.warp = [](Warp& warp, const Draws& draws, double) {
    const auto field = elastic_displacement(draws.at(0), warp.height, warp.width, warp.device);
    warp.displacement = warp.displacement.defined() ? warp.displacement + field : field;
  };
  return a;
}

}  // namespace seg
