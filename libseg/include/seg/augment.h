#pragma once
// Random affine augmentation as the notebook does it: theta = I + scale * randn, per sample.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <utility>

namespace seg {

// The one random source of a run: a CPU generator seeded with `seed`. Draws are made on the
// CPU and moved to the device, so a seed gives the same numbers on CPU and CUDA.
at::Generator make_seeded_generator(uint64_t seed);

// Moves draws made on the CPU to `device` (as `dtype`, when given) without a host-device
// sync: a CUDA copy from ordinary (pageable) memory waits for every kernel queued before it,
// several times a step; from pinned memory it queues behind them and the CPU goes on
// launching the step's work. On the CPU, a plain conversion.
at::Tensor upload(const at::Tensor& host, const at::Device& device, std::optional<at::ScalarType> dtype = std::nullopt);

// B x 2 x 3 affine matrices I + scale * N(0,1), drawn from `gen` (CPU generator; the result
// is moved to `device`), so the same seed gives the same matrices on CPU and CUDA.
// zoom Z > 0 also scales each matrix's linear part by exp(U(-1, 1) * log(1 + Z)), drawn
// after the noise: the field of view widens or narrows by up to 1 + Z times, as radiographs
// framed wider or tighter than JSRT's show the chest smaller or larger. zoom 0 draws nothing
// more, so a seed gives the same matrices as without it.
// rotation R > 0 (degrees, up to 180) then turns each matrix by U(-R, R) about the centre,
// drawn after the zoom, as a patient turned on the detector: the notebook's noise turns by
// about 4 degrees (one sigma) only. The turn is a rotation of pixels, not of the normalised
// coordinates, for images `aspect` = width / height. rotation 0 draws nothing more.
at::Tensor random_affine_theta(int64_t batch, double scale, at::Generator& gen,
                               const at::Device& device, double zoom = 0.0, double rotation = 0.0,
                               double aspect = 1.0);

// What a warp shows where it samples outside the image: 0 (the notebook's; the mean of a
// normalised image), the nearest edge pixel (the body goes on), or each image's minimum (the
// dark border of a film or collimator). Labels are always background (0) there.
enum class Padding { zeros, border, minimum };

// Applies theta (B x 2 x 3) to images (B x C x H x W float, bilinear) and labels
// (B x H x W integer, nearest; the output stays in the input's dtype and label set),
// with align_corners=false as in the notebook's defaults. Out-of-image pixels follow `padding`.
// theta maps output coordinates to input coordinates, both normalised to [-1, 1]
// (F.affine_grid's convention). labels may be undefined (images only).
// `displacement` (B x H x W x 2, in the same normalised units; optional) is added to the
// affine sampling grid: an elastic warp on top of the affine one.
std::pair<at::Tensor, at::Tensor> apply_affine(const at::Tensor& images, const at::Tensor& labels,
                                               const at::Tensor& theta, const at::Tensor& displacement = {},
                                               Padding padding = Padding::zeros);

// random_affine_theta (on the images' device) + apply_affine.
std::pair<at::Tensor, at::Tensor> random_affine(const at::Tensor& images, const at::Tensor& labels,
                                                double scale, at::Generator& gen);

}  // namespace seg

namespace seg {

// Random exposure and contrast, per sample, for radiographs from other scanners: on
// normalised images (B x C x H x W float), a gamma curve exp(strength * N(0,1)) applied to
// each image's own min..max range, then contrast 1 + strength * N(0,1) about the image
// mean and a brightness shift strength * N(0,1). strength 0 returns the input.
at::Tensor random_intensity(const at::Tensor& images, double strength, at::Generator& gen);

// Small elastic deformation: N(0, strength^2) offsets (normalised units: 2 spans the image)
// at the nodes of a 4 x 4 control grid per sample and axis, B x 2 x 4 x 4, drawn on the CPU
// from `gen`; elastic_displacement interpolates them bicubically to a smooth B x H x W x 2
// field for apply_affine. strength 0.02 moves pixels by about 2.5 px (1 sigma) at 256.
at::Tensor random_elastic_draws(int64_t batch, double strength, at::Generator& gen);
at::Tensor elastic_displacement(const at::Tensor& draws, int64_t height, int64_t width, const at::Device& device);

// Its two halves, for drawing a whole global batch and applying a rank's slice of it:
// 3 x B x 1 x 1 x 1 draws (gamma, contrast, brightness; CPU) and their application.
at::Tensor random_intensity_draws(int64_t batch, double strength, at::Generator& gen);
at::Tensor apply_intensity(const at::Tensor& images, const at::Tensor& draws);

}  // namespace seg

namespace seg {

// Random detector and processing texture, per sample, for films sharpened, softened or noisier
// than JSRT's (bench/shift_variants.py: unsharp-masked and noisy films cost the clavicles most).
// On normalised images (B x C x H x W float): x + a (x - G_sigma x), then Gaussian noise, with
// sigma ~ U(0.5, 2) px, a ~ strength * U(-1, 2.5) (-1: fully blurred; 2.5: 250 % unsharp
// masking) and a noise deviation ~ strength * U(0, 0.25) (normalised units: 0.25 is about 12
// grey levels of an 8-bit film). strength 0 returns the input.
at::Tensor random_texture(const at::Tensor& images, double strength, at::Generator& gen);

// Draws of an augmentation that takes numbers per sample and a field of noise per sample, both
// made on the CPU; narrow() takes a rank's slice of a global batch's draws.
struct DrawsWithNoise {
  at::Tensor per_sample;
  at::Tensor noise;
  DrawsWithNoise narrow(int64_t start, int64_t length) const;
};

// random_texture's two halves, for drawing a whole global batch and applying a rank's slice of it:
// per_sample B x 3 (sigma, amount, noise deviation) and noise B x 1 x H x W (N(0, 1)).
DrawsWithNoise random_texture_draws(int64_t batch, int64_t height, int64_t width, double strength, at::Generator& gen);
at::Tensor apply_texture(const at::Tensor& images, const DrawsWithNoise& draws);

// Random opacities, per sample, for diseased lungs (bench/shift_variants.py: a consolidated lower
// lobe cost the shipped model 0.03-0.04 of lung Dice; tuberculosis screening sets are full of
// such films): up to six soft, patchy, flat-topped blobs in the middle of the film that blend
// the image towards soft-tissue grey (the sample's mean + one deviation), x + alpha (t - x).
// Labels are unchanged: the lung under an opacity is still lung. Each blob is present with
// probability 1/2, its centre at U(-0.45, 0.45) across and U(-0.45, 0.35) down (normalised
// coordinates, 2 spans the image), its sigmas U(0.05, 0.3) per axis (6 to 38 px at 256: a
// nodule to a lobe), its opacity strength U(0.5, 1) (at most 1), modulated by a smooth grain;
// no blob reaches the outer 2.5 % of the frame. On normalised images (B x C x H x W float);
// strength 0 returns the input.
at::Tensor random_opacity(const at::Tensor& images, double strength, at::Generator& gen);

// Its two halves: per_sample B x 6 x 5 (centre x, centre y, sigma x, sigma y, opacity; 0 for a
// blob that is absent) and noise B x 1 x 12 x 12 (N(0, 1), the grain before it is smoothed).
DrawsWithNoise random_opacity_draws(int64_t batch, double strength, at::Generator& gen);
at::Tensor apply_opacity(const at::Tensor& images, const DrawsWithNoise& draws);

// Random radiopaque devices, per sample, for bedside and intensive-care films
// (bench/shift_variants.py "devices": a pacemaker and its lead across the left lung cost the
// shipped model a quarter of that lung): a tube down the middle (nasogastric or endotracheal,
// p 0.8), a central line from either shoulder (p 0.5), four ECG electrodes (rings) with wires
// running off the film (p 0.6 each), a stray wire (p 0.3) and a pacemaker with its lead into
// the heart (p 0.3), blended towards the sample's brightest value (metal is denser than bone):
// tubes and the pacemaker by U(0.6, 1), wires and electrodes by U(0.3, 0.8). Labels are
// unchanged: the lung under a wire is still lung. A sample shows devices at all with
// probability `probability` (0 to 1; 0 returns the input). Tubes are 3 px wide and wires 1 px
// at 256 x 256, wider in proportion on larger images.
at::Tensor random_devices(const at::Tensor& images, double probability, at::Generator& gen);

// Its two halves, in normalised coordinates (2 spans the image; y down):
//   curves  B x 8 x 8: quadratic Bezier start, control and end (x, y each), thick (1: tube or
//           lead, 0: wire), present (0 or 1)
//   rings   B x 4 x 4: electrode centre x, y, radius, present
//   box     B x 5: pacemaker centre x, y, half-width, half-height, present
//   opacity B x 2: the blend of tubes and pacemaker, of wires and electrodes
// All on the CPU: apply_devices works out the pixels each device covers there (in double
// precision, the same for CPU and CUDA) and sends the device a uint8 mask.
struct DeviceDraws {
  at::Tensor curves, rings, box, opacity;
  DeviceDraws narrow(int64_t start, int64_t length) const;
};
DeviceDraws random_device_draws(int64_t batch, double probability, at::Generator& gen);
at::Tensor apply_devices(const at::Tensor& images, const DeviceDraws& draws);

// Random film processing, per sample, for radiographs that an archive or a detector's software
// processed (bench/shift_variants.py: histogram-equalised films cost the lungs 0.005): a blend
// towards the image's own histogram equalisation, x + b (eq(x) - x) with b ~ min(1, strength U(0, 1)),
// then large-scale local contrast, + c (x - G_sigma x) with sigma ~ U(0.03, 0.12) of the image's
// width and c ~ strength * U(0, 1.5); each sample keeps its mean and deviation. On normalised
// images (B x C x H x W float); strength 0 returns the input.
at::Tensor random_processing(const at::Tensor& images, double strength, at::Generator& gen);

// Its two halves: draws are B x 3 (blend, sigma in pixels, amount; CPU).
at::Tensor random_processing_draws(int64_t batch, int64_t width, double strength, at::Generator& gen);
at::Tensor apply_processing(const at::Tensor& images, const at::Tensor& draws);

// Each sample's histogram equalisation: every value replaced by the fraction of the sample's values
// at or below it (equal values stay equal), spread to the sample's own mean and deviation.
at::Tensor equalize_histogram(const at::Tensor& images);

// Each sample blurred by its own Gaussian (sigmas: B, in pixels, on the CPU), separably, with reflected
// borders; each kernel reaches 3 of its sigmas, so a sample's blur does not depend on its batch.
at::Tensor gaussian_blur(const at::Tensor& images, const at::Tensor& sigmas);

}  // namespace seg
