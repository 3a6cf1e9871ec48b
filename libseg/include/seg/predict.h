#pragma once
// From raw pixels to label maps with a trained model.
#include <seg/film_prediction.h>
#include <seg/model_file.h>

#include <ATen/core/Tensor.h>

#include <array>
#include <vector>

namespace seg {

// Raw intensities (B x H x W or B x 1 x H x W, any numeric dtype) -> float B x 1 x H x W
// network input, normalised as the model says. Stays on the input's device.
at::Tensor normalize_images(const at::Tensor& raw, const Normalization& normalization);

// Resamples a float B x C x H x W batch to height x width: area averaging when shrinking
// both ways, bilinear otherwise (align_corners = false, as in training).
at::Tensor resize_batch(const at::Tensor& images, int64_t height, int64_t width);

// Network logits brought to height x width (bilinear, align_corners = false): how training
// scores a coarse prediction against full-size labels, and how inference returns to an
// image's own grid.
at::Tensor upsample_logits(const at::Tensor& logits, int64_t height, int64_t width);

// Argmax over channels, mapped to the class values of `classes` (channel k -> entries[k]),
// as kByte B x H x W.
at::Tensor logits_to_labels(const at::Tensor& logits, const ClassTable& classes);

// How an image meets a model's input grid, and whether to average over test-time warps.
//   pad (default): scale the image to fit the input keeping its aspect ratio, centre it and
//     pad the rest by replicating the image's edge pixels (after normalisation); the network's
//     output over the padding is cut off before resampling back to the image's grid. When the
//     fitted size equals the input size (same aspect ratio, e.g. a square JSRT image into a
//     square model) nothing is padded and the result is bit-identical to stretching.
//   pad = false: stretch the image to the input size (the aspect ratio is lost).
//   tta: average the softmax over 7 warps of the network input (identity, scales 0.9 and 1.1,
//     shifts of 2 input pixels left/right/up/down), each warped back onto the image's grid
//     before averaging; no mirroring (left and right labels would swap). Pixels a warp did not
//     see are left out of its average. 7 forward passes instead of 1.
//   reframe (predict_probabilities only): segment twice. The first pass finds the structures
//     (their box after keeping each one's largest piece); the second segments the part of the
//     image that frames that box as the model's training images framed theirs
//     (ModelInfo::framing, seg::framed_crop; grown to the input's aspect ratio where the image
//     allows, seg::grown_to_aspect) and replaces the first pass's probabilities there. For films
//     whose field of view is wider than the training images' (the chest small in the frame,
//     off-centre, a whole torso): the chest then meets the network at the size it was trained
//     on, and at the image's own resolution. The second pass runs only where it magnifies the
//     structures 1.1 to 8 times (a film framed as the training images is left as it was; beyond
//     8, what the first pass found is no chest), and its result is kept only where its own
//     structures stay clear of the crop's sides inside the image (seg::crop_holds_structures:
//     otherwise the crop cut through something the first pass missed, as a lung whited out by
//     an effusion, and the first pass stands). Up to 2x the time.
struct PredictOptions {
  bool pad = true;
  bool tta = false;
  bool reframe = false;
};

// The test-time warps: scale s and shift (dx, dy) in input pixels; the warped input shows the
// image s times larger, moved by (dx, dy). The first is the identity.
struct TtaWarp {
  double scale = 1.0, dx = 0.0, dy = 0.0;
};
const std::vector<TtaWarp>& tta_warps();

// The size (height, width) an image of height x width takes inside an input of
// input_height x input_width when its aspect ratio is kept (each side rounded, at least 1).
std::array<int64_t, 2> fitted_size(int64_t height, int64_t width, int64_t input_height, int64_t input_width);

// Segments a batch of raw images that share one size H x W: normalise, resample to the
// model's input size (see PredictOptions), run the network without autograd, bring the logits
// back to H x W. Returns the logits (float B x C x H x W on `device`); use logits_to_labels or
// softmax. With options.tta the result is the log of the averaged softmax (argmax and softmax
// work on it as on logits).
at::Tensor predict_logits(const Model& model, const at::Tensor& raw_images, const at::Device& device,
                          const PredictOptions& options = {});

// The ensemble: the mean over `models` of each model's softmax (with its own normalisation,
// input size and, with tta, warps), as float B x C x H x W on `device`. Every model must have
// the same class table (seg::Error otherwise). One model without tta: softmax(predict_logits).
// With options.reframe the framing is the first model's (seg::Error if its file has none).
// `reframed`, when given, is increased by the number of images that had a second pass.
at::Tensor predict_probabilities(const std::vector<Model>& models, const at::Tensor& raw_images,
                                 const at::Device& device, const PredictOptions& options = {},
                                 int64_t* reframed = nullptr);

// What predict_probabilities computes, for films of any sizes (each H x W, any numeric type),
// kept at the networks' resolution until it is asked for (seg::FilmPrediction): the networks
// run once per model (and warp) on all films together; reframing runs the second passes
// together too. The films' label maps, clean-up and probabilities are then as
// predict_probabilities' (up to float rounding where two classes tie), at a fraction of the
// time and memory for films larger than the networks' input. The models must be on `device`
// and in eval mode (seg::Segmenter holds them so); calls from several threads may share them.
std::vector<FilmPrediction> predict_films(const std::vector<Model>& models, const std::vector<at::Tensor>& films,
                                          const at::Device& device, const PredictOptions& options = {});

// "auto" -> CUDA when available else CPU; "cpu"; "cuda" or "cuda:N" (seg::UsageError when
// CUDA is asked for and absent).
at::Device parse_device(const std::string& name);

}  // namespace seg
