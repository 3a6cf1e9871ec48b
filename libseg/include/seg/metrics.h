#pragma once
// Overlap and surface-distance metrics between label maps (CPU or CUDA tensors).
#include <ATen/core/Tensor.h>

#include <array>
#include <vector>

namespace seg {

// The smoothing term of the notebook's Dice; it makes a label absent from both sides score 1.
constexpr double kDiceSmoothing = 1e-8;

// The notebook's Dice: for each label l in 1..max_label-1,
// (2*|P==l & T==l| + 1e-8) / (|P==l| + |T==l| + 1e-8). pred and truth are integer label
// maps of equal shape, any leading dims (H x W or B x H x W: the sum runs over all of
// them). Returns a float tensor of max_label-1 values on the inputs' device.
// Pixel counts are exact integers, so large batches lose no precision.
at::Tensor dice_per_label(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label);

// Batched: pred, truth B x H x W (or B x anything) -> B x (max_label-1), each case on its own.
at::Tensor dice_per_case(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label);

// Jaccard with the same smoothing: (|P&T| + 1e-8) / (|P|T| + 1e-8), over all pixels.
at::Tensor jaccard_per_label(const at::Tensor& pred, const at::Tensor& truth,
                             int64_t max_label);
// Batched like dice_per_case: B x (max_label-1).
at::Tensor jaccard_per_case(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label);

// Relative volume difference (|P==l| - |T==l|) / |T==l| for l in 1..max_label-1, over all
// pixels (MedPy's ravd, signed): > 0 over-segments, < 0 under-segments, so it tells which way
// a Dice short of 1 errs. Truth empty: 0 when the prediction is empty too, else +infinity.
// Float tensor of max_label-1 values on the inputs' device.
at::Tensor volume_difference_per_label(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label);

// Surface distances between two binary 2D masks (H x W, bool or integer != 0; any device,
// computed on the CPU with an exact Euclidean distance transform).
// The surface of a mask is its pixels with a 4-neighbour outside the mask (or on the
// image border); distances are Euclidean between pixel centres, scaled by spacing
// (row, col order: {spacing_y, spacing_x}). For every surface pixel of either mask, the
// distance to the nearest surface pixel of the other is taken; both directions are pooled
// (as MedPy does). hd95 is the 95th percentile of the pooled distances (linear
// interpolation between order statistics, numpy's default); assd is their mean.
// Defined behaviour: both masks empty -> hd95 = assd = 0 (nothing to miss);
// exactly one empty -> +infinity (reported as "inf" in CSV and null in JSON).
struct SurfaceDistance {
  double hd95 = 0.0;  // 95th percentile of the pooled symmetric surface distances
  double assd = 0.0;  // mean of the pooled symmetric surface distances
};
SurfaceDistance surface_distance(const at::Tensor& pred_mask, const at::Tensor& truth_mask,
                                 std::array<double, 2> spacing_yx = {1.0, 1.0});

// surface_distance of (pred == l, truth == l) for l in 1..max_label-1 (pred, truth H x W).
std::vector<SurfaceDistance> surface_distance_per_label(
    const at::Tensor& pred, const at::Tensor& truth, int64_t max_label,
    std::array<double, 2> spacing_yx = {1.0, 1.0});

// Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher): for every pixel
// of `features` (H x W bool, CPU), the squared distance in physical units to the nearest
// true pixel; +infinity everywhere when there is none. Returns H x W double, CPU.
at::Tensor squared_distance_transform(const at::Tensor& features,
                                      std::array<double, 2> spacing_yx = {1.0, 1.0});

}  // namespace seg
