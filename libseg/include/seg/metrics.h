#pragma once
// Overlap and surface-distance metrics between label maps (CPU or CUDA tensors).
#include <ATen/core/Tensor.h>

#include <array>
#include <vector>

namespace seg {

// The notebook's Dice: for each label l in 1..max_label-1,
// (2*|P==l & T==l| + 1e-8) / (|P==l| + |T==l| + 1e-8). pred and truth are integer label
// maps of equal shape, any leading dims (H x W or B x H x W: the sum runs over all of
// them). Returns a float tensor of max_label-1 values on the inputs' device.
at::Tensor dice_per_label(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label);

// Batched: pred, truth B x H x W -> B x (max_label-1), each case scored on its own.
at::Tensor dice_per_case(const at::Tensor& pred, const at::Tensor& truth, int64_t max_label);

// Jaccard with the same smoothing: (|P&T| + 1e-8) / (|P|T| + 1e-8).
at::Tensor jaccard_per_label(const at::Tensor& pred, const at::Tensor& truth,
                             int64_t max_label);

// Surface distances between two binary masks (H x W, bool or integer != 0).
// The surface of a mask is its pixels with a 4-neighbour outside the mask (or on the
// image border); distances are Euclidean between pixel centres, scaled by spacing
// (row, col order: {spacing_y, spacing_x}).
// Defined behaviour: both masks empty -> hd95 = assd = 0 (nothing to miss);
// exactly one empty -> +infinity (reported as "inf" in CSV and null in JSON).
struct SurfaceDistance {
  double hd95 = 0.0;  // 95th percentile of the pooled symmetric surface distances
  double assd = 0.0;  // mean of the pooled symmetric surface distances
};
SurfaceDistance surface_distance(const at::Tensor& pred_mask, const at::Tensor& truth_mask,
                                 std::array<double, 2> spacing_yx = {1.0, 1.0});

}  // namespace seg
