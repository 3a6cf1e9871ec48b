#pragma once
// Training's augmentation as one pipeline: the registered augmentations, their strengths
// (AugmentOptions) and AugmentPipeline, which draws a global batch's random parameters and
// applies a slice of them. The one-process step, each rank of a data-parallel run, the
// CUDA-graph step and seg-augment all go through it, so they draw and apply the same.
#include <seg/augment.h>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace seg {

// What one augmentation drew for a batch: tensors on the CPU whose first dimension is the sample.
using Draws = std::vector<at::Tensor>;

// The size of the batch an augmentation draws for.
struct DrawShape {
  int64_t batch = 0, height = 0, width = 0;
};

// Where a batch's geometric augmentations send each output pixel: theta (B x 2 x 3, output to
// input positions in normalised coordinates, F.affine_grid's convention), plus an optional
// displacement (B x H x W x 2) and what shows beyond the image. They are gathered first and
// sampled once, so images are interpolated once however many of them are on.
struct Warp {
  at::Tensor theta;
  at::Tensor displacement;
  Padding padding = Padding::zeros;
  int64_t height = 0, width = 0;
  at::Device device = at::kCPU;  // where the images are
};

// One registered augmentation. Geometric ones act on images and labels (through the Warp);
// the others on images only, labels unchanged. A strength of 0 switches one off.
struct Augmentation {
  std::string name;              // recipe key under "augmentation"; seg-train --augment-<name>
  std::string help;              // what it does, for --help
  double default_strength = 0.0;
  double min_strength = 0.0;     // the strengths allowed, both ends included
  double max_strength = 0.0;     // (infinity: no upper bound)
  bool geometric = false;
  bool base_of_warp = false;     // drawn whenever any geometric one is on (the notebook's affine)
  bool widens_view = false;      // shows what lay beyond the image: a padding is drawn for it
  bool recordable = false;       // fixed shapes and no host reads: may run inside a CUDA graph
  std::function<Draws(const DrawShape&, double strength, at::Generator&)> draw;
  std::function<void(Warp&, const Draws&, double strength)> warp;                  // geometric ones
  std::function<at::Tensor(const at::Tensor&, const Draws&, double strength)> apply;  // the others
};

// Every augmentation, in the order a training step applies them.
const std::vector<Augmentation>& augmentations();
// The one named `name`; nullptr for a name not registered.
const Augmentation* find_augmentation(const std::string& name);
// "0 or more", "0 to 1": the strengths `a` takes, for messages and --help.
std::string strength_range(const Augmentation& a);

// The strength of each augmentation by name; a name not set has its registered default.
struct AugmentOptions {
  std::map<std::string, double> strengths;

  double strength(const std::string& name) const;  // throws seg::Error for a name not registered
  bool operator==(const AugmentOptions& other) const;  // the same strength for every registered name
  bool operator!=(const AugmentOptions& other) const { return !(*this == other); }
};

// Draws of every augmentation that is on, for one batch (or a slice of one).
struct BatchDraws {
  std::vector<Draws> draws;          // one entry per AugmentPipeline::steps() entry
  Padding padding = Padding::zeros;  // drawn when a view-widening augmentation is on
  BatchDraws slice(int64_t start, int64_t length) const;
};

class AugmentPipeline {
 public:
  explicit AugmentPipeline(const AugmentOptions& options);

  // The augmentations that take part, in order (the affine base included whenever one of the
  // geometric ones is on, as its draws are).
  const std::vector<const Augmentation*>& steps() const { return steps_; }
  bool empty() const { return steps_.empty(); }
  bool warps() const;  // a geometric augmentation is on
  double strength(const Augmentation& a) const;

  // A batch's random parameters, all drawn on the CPU from `gen` in one fixed order, so a seed
  // gives the same batches on any device and for any split of the batch into ranks.
  BatchDraws draw(const DrawShape& shape, at::Generator& gen) const;

  // The geometric part of `draws` for images of height x width on `device`.
  Warp warp(const BatchDraws& draws, int64_t height, int64_t width, const at::Device& device) const;
  // The warp on images (B x C x H x W float) and labels (B x H x W integer; may be undefined).
  std::pair<at::Tensor, at::Tensor> apply_warp(const at::Tensor& images, const at::Tensor& labels,
                                               const BatchDraws& draws) const;
  // The augmentations that act on images alone.
  at::Tensor apply_to_images(const at::Tensor& images, const BatchDraws& draws) const;
  // Both, as a training step does: draws for exactly these images (a slice of a global batch's).
  std::pair<at::Tensor, at::Tensor> apply(const at::Tensor& images, const at::Tensor& labels,
                                          const BatchDraws& draws) const;

 private:
  AugmentOptions options_;
  std::vector<const Augmentation*> steps_;
};

}  // namespace seg
