#pragma once
// What seg-segment does to films, as a library: one model or an ensemble, test-time
// augmentation, reframing, the clean-up, and structures that the training labels drew over
// made whole again.
#include <seg/error.h>
#include <seg/image.h>
#include <seg/model_file.h>
#include <seg/predict.h>

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <functional>
#include <optional>
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

// How Segmenter::stream spreads films over the machine.
struct StreamOptions {
  int threads = 1;           // CPU threads in all
  int64_t batch = 8;         // films per forward pass, at most
  bool keep_pixels = false;  // hand write() each film's pixels too (for overlays), not only its geometry
};

// Called on a worker thread after each forward pass of Segmenter::stream, with the films'
// indices, their pixels as read and their predictions (for work that needs them, such as
// quality features); each index comes once.
using FilmAnalysis = std::function<void(const std::vector<size_t>& indices, const std::vector<at::Tensor>& films,
                                        const std::vector<FilmPrediction>& predictions)>;

// Segmenter::stream's error when segmenting film `index` failed (not reading it): what() is the
// cause's message, for the caller to put beside the film's name.
class FilmSegmentationError : public Error {
 public:
  FilmSegmentationError(size_t index, const std::string& cause) : Error(cause), index(index) {}
  size_t index;
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

  // Segments films 0 .. count-1 as a stream: `read(i)` gives film i (nothing: leave it out),
  // called on worker threads, each worker reading its own films and segmenting them in
  // forward passes of up to options.batch; `write(i, film, segmentation)` is called on the
  // calling thread in the order of i. On the CPU the workers are as many as options.threads
  // (fewer for fewer films), each with an equal share of the threads for its network: films in
  // parallel keep both the network's and the rest's work on every core. Memory stays bounded:
  // a worker stops gathering films for a pass once they hold 128 MiB, finished films wait for
  // their turn up to 128 MiB. An exception from `read(i)` or from segmenting film i is thrown
  // here once every film before i is written (no film after it is): read's as it is,
  // segmenting's as a FilmSegmentationError naming i (a pass of several films that fails is
  // retried a film at a time to find it); one from `write` at once. Either way the workers
  // have stopped when stream returns or throws.
  void stream(size_t count, const std::function<std::optional<Image>(size_t)>& read,
              const std::function<void(size_t, const Image&, const Segmentation&)>& write,
              const StreamOptions& options, const FilmAnalysis& analyse = {}) const;

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
