// The affine augmentations: the notebook's noise (scale), zoom and rotation. They share this
// file because they compose one matrix per sample (theta), in this order: the noise, then the
// zoom scales its linear part, then the turn; random_affine_theta draws all three at once.
#include <seg/augment.h>
#include <seg/augment_pipeline.h>
#include <seg/error.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace seg {
namespace {
at::Tensor draw_noise(int64_t batch, at::Generator& gen) {
  return at::randn({batch, 2, 3}, gen, at::TensorOptions().dtype(at::kFloat));
}

// U(-1, 1) per sample, B x 1 x 1.
at::Tensor draw_zoom(int64_t batch, at::Generator& gen) {
  return at::rand({batch, 1, 1}, gen, at::TensorOptions().dtype(at::kFloat)) * 2 - 1;
}

// U(-1, 1) per sample, B, in double precision.
at::Tensor draw_turn(int64_t batch, at::Generator& gen) {
  return at::rand({batch}, gen, at::TensorOptions().dtype(at::kDouble)) * 2 - 1;
}

// I + scale * noise.
at::Tensor noisy_identity(const at::Tensor& noise, double scale) {
  const auto identity = at::eye(2, 3, noise.options()).unsqueeze(0);
  return identity + scale * noise;
}

// Log-uniform, so widening and narrowing by the same factor are equally likely.
void zoom_theta(at::Tensor& theta, const at::Tensor& u, double zoom) {
  const auto factor = at::exp(u.to(theta.device()) * std::log1p(zoom));
  theta.narrow(2, 0, 2).mul_(factor);
}

// Normalised coordinates are pixels scaled by 2 / width and 2 / height, so a turn of the
// pixels by a reads [[cos a, -sin a / aspect], [sin a * aspect, cos a]] in them.
void turn_theta(at::Tensor& theta, const at::Tensor& u, double rotation, double aspect) {
  const auto angle = u.to(theta.device()) * (rotation * M_PI / 180);
  const auto c = at::cos(angle), s = at::sin(angle);
  const auto turn = at::stack({at::stack({c, -s / aspect}, 1), at::stack({s * aspect, c}, 1)}, 1);
  // theta maps output to input positions: turn the output grid, then apply the rest.
  const auto linear = at::matmul(theta.narrow(2, 0, 2).to(at::kDouble), turn);
  theta = at::cat({linear.to(at::kFloat), theta.narrow(2, 2, 1)}, 2);
}
}  // namespace

at::Tensor random_affine_theta(int64_t batch, double scale, at::Generator& gen, const at::Device& device, double zoom,
                               double rotation, double aspect) {
  if (batch < 0) throw Error("random_affine_theta", "negative batch size");
  if (!(rotation >= 0 && rotation <= 180)) throw Error("random_affine_theta", "rotation must be 0 to 180 degrees");
  if (!(aspect > 0)) throw Error("random_affine_theta", "aspect (width / height) must be positive");
  if (gen.device().type() != at::kCPU)
    throw Error("random_affine_theta", "needs a CPU generator (draws are made on the CPU)");
  auto theta = noisy_identity(draw_noise(batch, gen), scale);
  if (zoom > 0) zoom_theta(theta, draw_zoom(batch, gen), zoom);
  if (rotation > 0) turn_theta(theta, draw_turn(batch, gen), rotation, aspect);
  return upload(theta, device);
}

std::pair<at::Tensor, at::Tensor> random_affine(const at::Tensor& images, const at::Tensor& labels, double scale,
                                                at::Generator& gen) {
  if (!images.defined() || images.dim() != 4) throw Error("random_affine", "images must be B x C x H x W");
  auto theta = random_affine_theta(images.size(0), scale, gen, images.device());
  return apply_affine(images, labels, theta);
}

Augmentation scale_augmentation() {
  Augmentation a;
  a.name = "scale";
  a.help = "the notebook's affine augmentation: theta = I + scale * randn, per sample (0: off)";
  a.default_strength = 0.1;
  a.max_strength = std::numeric_limits<double>::infinity();
  a.geometric = a.base_of_warp = a.recordable = true;
  a.draw = [](const DrawShape& shape, double, at::Generator& gen) { return Draws{draw_noise(shape.batch, gen)}; };
  a.warp = [](Warp& warp, const Draws& draws, double scale) { warp.theta = noisy_identity(draws.at(0), scale); };
  return a;
}

Augmentation zoom_augmentation() {
  Augmentation a;
  a.name = "zoom";
  a.help = "field of view wider or narrower by up to 1 + zoom, log-uniform (0: off; 0.5: chest at 0.67..1.5 of its size)";
  a.max_strength = std::numeric_limits<double>::infinity();
  a.geometric = a.widens_view = true;
  a.draw = [](const DrawShape& shape, double, at::Generator& gen) { return Draws{draw_zoom(shape.batch, gen)}; };
  a.warp = [](Warp& warp, const Draws& draws, double zoom) { zoom_theta(warp.theta, draws.at(0), zoom); };
  return a;
}

Augmentation rotation_augmentation() {
  Augmentation a;
  a.name = "rotation";
  a.help = "films turned by up to this many degrees either way, uniform (0: off; the affine noise alone turns about 4 degrees)";
  a.max_strength = 180;
  a.geometric = a.widens_view = true;
  a.draw = [](const DrawShape& shape, double, at::Generator& gen) { return Draws{draw_turn(shape.batch, gen)}; };
  a.warp = [](Warp& warp, const Draws& draws, double rotation) {
    turn_theta(warp.theta, draws.at(0), rotation, static_cast<double>(warp.width) / static_cast<double>(warp.height));
  };
  return a;
}

}  // namespace seg
