#pragma once
// Clean-up of predicted label maps: one connected piece per structure, no enclosed holes.
#include <seg/dataset.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace seg {

// Keeps, for every structure (every label value other than 0), only its largest connected
// piece (8-connectivity; ties: the piece met first in row-major order). A structure's pieces
// connect through its own pixels and through those of structures with fewer pixels in the
// image, since those are drawn over it: the lung apex above the clavicle stays lung (in the
// JSRT truth the clavicles cut most lungs in two), while a lung speck in the abdomen, or a
// heart speck inside the lung, goes. The main piece is the one with the most pixels of the
// structure.
//
// labels: integer label map H x W or B x H x W (each image on its own), values as in
// `classes`. Computed on the CPU; returns kByte of the input's shape on the input's device.
//
// Pixels of dropped components:
//   - without `probabilities`: background (0);
//   - with `probabilities` (B x C x H x W or C x H x W, channel k = classes.entries[k], e.g.
//     softmax of the logits): the most probable class other than the dropped one, so a
//     misplaced speck inside the lung becomes lung rather than a hole. A second pass then
//     sets to background whatever this reassignment left disconnected, so every structure
//     still ends with one component. Values absent from `classes` fall back to background.
at::Tensor keep_largest_component(const at::Tensor& labels, const ClassTable& classes,
                                  const at::Tensor& probabilities = at::Tensor());

// The channel (index into classes.entries) that pixel `pixel` (row-major) of image `image`
// takes when its piece of channel `dropped` goes: the most probable channel other than
// `dropped`; -1 for background. For predictions kept at the network's resolution, whose
// probabilities at full size would cost more than the few dropped pixels need.
using NextLikeliest = std::function<int(int64_t image, int64_t pixel, int dropped)>;

// keep_largest_component with the dropped pixels' classes from `next_likeliest` (empty:
// background, as without probabilities).
at::Tensor keep_largest_component(const at::Tensor& labels, const ClassTable& classes,
                                  const NextLikeliest& next_likeliest);

// Fills holes: background (0) regions that are 4-connected, do not touch the image border
// and are enclosed by one structure alone take that structure's value. Regions that touch
// two structures (the gap between lung and heart) or the border stay as they are.
// Same shapes, devices and result type as keep_largest_component.
at::Tensor fill_holes(const at::Tensor& labels);

// A structure the training labels drew another over: SCR's label maps paint each clavicle over
// the apex of the lung beneath it, so a model trained on them calls that part of the lung
// clavicle. Values as in the class table.
struct Overlap {
  int under;
  int over;
};

// Paints each `under` structure whole again, on top: the `over` pixels inside the convex hull
// of the `under` structure's pixels (pixel centres; the hull's edges count as inside) take the
// `under` value: the lung field behind the clavicle, as SCR's own lung masks and other lung
// data sets draw it. The hulls are taken from the input, one image at a time; an `under`
// structure with fewer than three hull corners restores nothing. Same shapes, devices and
// result type as keep_largest_component.
at::Tensor restore_covered(const at::Tensor& labels, const std::vector<Overlap>& overlaps);

// The clean-up steps by name, in the order they run: "largest-component", "fill-holes".
const std::vector<std::string>& postprocessing_steps();

// Throws seg::Error "<source>: unknown post-processing step ..." for a name not in
// postprocessing_steps().
void check_postprocessing_steps(const std::vector<std::string>& steps, const std::string& source);

// The clean-ups seg-train scores on the validation split after the last epoch, fewest steps
// first: none, largest-component, fill-holes, both.
const std::vector<std::vector<std::string>>& postprocessing_candidates();

// The key a candidate's score is recorded under: "none", "largest-component",
// "largest-component+fill-holes", ...
std::string postprocessing_candidate_name(const std::vector<std::string>& steps);

// Runs the named steps (any order given; they run in postprocessing_steps()'s order) on
// `labels`, with `probabilities` for keep_largest_component as above. No steps: the labels
// unchanged, as kByte.
at::Tensor postprocess(const at::Tensor& labels, const std::vector<std::string>& steps, const ClassTable& classes,
                       const at::Tensor& probabilities = at::Tensor());
at::Tensor postprocess(const at::Tensor& labels, const std::vector<std::string>& steps, const ClassTable& classes,
                       const NextLikeliest& next_likeliest);

}  // namespace seg
