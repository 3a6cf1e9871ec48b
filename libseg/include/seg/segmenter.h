#pragma once
// What seg-segment does to films, as a library: one model or an ensemble, test-time
// augmentation, reframing, the clean-up, and structures that the training labels drew over
// made whole again.
#include <seg/model_file.h>
#include <seg/predict.h>

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace seg {

struct SegmenterOptions {
  PredictOptions predict;                   // resizing, test-time augmentation, reframing
  std::vector<std::string> postprocessing;  // clean-up steps (seg::postprocessing_steps() names)
  bool whole = false;          // label maps with the drawn-over structures painted whole on top
  bool masks = false;          // also one mask per structure, each whole (structure_masks)
  bool probabilities = false;  // keep the class probabilities
};

// The clean-up to run: the steps every model recommends (unless `use_recommended` is false),
// plus those asked for, in seg::postprocessing_steps() order.
std::vector<std::string> clean_up_steps(const std::vector<Model>& models, bool use_recommended,
                                        const std::vector<std::string>& asked);

// A batch of films segmented.
struct Segmentation {
  at::Tensor labels;         // B x H x W kByte on the CPU: the label maps
  at::Tensor probabilities;  // B x C x H x W float on the CPU, when asked for
  at::Tensor restored;       // B x H x W kByte: every drawn-over structure whole, when masks are asked for
  at::Tensor as_predicted;   // B x H x W kByte: the cleaned-up labels before `whole`, when masks are asked for
  int64_t reframed = 0;      // films that had the reframing pass
};

class Segmenter {
 public:
  // Throws seg::Error when the models' class tables differ, or when `whole` is asked of a
  // model that records no overlaps (the message names the first model's `source`).
  Segmenter(std::vector<Model> models, SegmenterOptions options, const at::Device& device,
            const std::string& source);

  const ClassTable& classes() const { return models_.front().info.classes; }
  const SegmenterOptions& options() const { return options_; }

  // Segments raw films (B x H x W, any numeric type, one size) with the models and options:
  // predict, then finish each film.
  Segmentation segment(const at::Tensor& raw_images) const;

  // The two halves of segment(), for films streamed through a program: the networks' look at
  // films of any sizes (each H x W; one forward pass per model for all of them, reframing
  // included), kept at the networks' resolution...
  std::vector<FilmPrediction> predict(const std::vector<at::Tensor>& films) const;
  // ...and one film's segmentation at its own size (tensors with a batch dimension of 1): the
  // label map, its clean-up, and what else the options ask for. Both may run on several
  // threads at once, each on its own films.
  Segmentation finish(const FilmPrediction& prediction) const;

  // One mask per structure of film `index` (name, H x W bool): structures that the labels drew
  // over come from `restored`, the others as predicted; so lung and clavicle overlap as SCR's
  // masks draw them. Needs options().masks.
  std::vector<std::pair<std::string, at::Tensor>> structure_masks(const Segmentation& result, int64_t index) const;

 private:
  std::vector<Model> models_;
  SegmenterOptions options_;
  at::Device device_;
};

}  // namespace seg
