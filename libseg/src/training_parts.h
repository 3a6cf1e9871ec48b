#pragma once
// The pieces train_network assembles (libseg's own; not installed): the data on the device,
// validation, the checkpoint file and the CUDA-graph step.
#include <seg/augment_pipeline.h>
#include <seg/cuda_graph.h>
#include <seg/distributed.h>
#include <seg/models.h>
#include <seg/optim.h>
#include <seg/train.h>

#include <ATen/core/Generator.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace seg {

// Label values -> channel indices 0..C-1 (the identity for 0..C-1 class tables).
at::Tensor labels_to_channels(const at::Tensor& labels, const ClassTable& classes);

// Everything the training loop keeps on the device, made once.
struct DeviceData {
  at::Tensor images;  // N x 1 x H x W float, normalised
  at::Tensor labels;  // N x H x W long, channel indices
};
DeviceData to_device(const Dataset& part, const Normalization& norm, const ClassTable& classes, const at::Device& device);

struct Validation {
  std::vector<double> dice;                // per label 1..C-1, plain argmax (the notebook's figure)
  std::vector<double> candidate_mean_dice; // per postprocessing_candidates() entry; empty unless asked
};

// Mean Dice per label (1..C-1) over the cases, as the notebook's validation: batched, no autograd.
// With several ranks each scores every world-th case and the sums are added up. With
// `score_postprocessing` every clean-up candidate is also run on the predictions (on the CPU)
// and scored.
Validation validate(SegNetImpl& net, const DeviceData& val, const ClassTable& classes, Communicator* comm,
                    bool score_postprocessing);

// nnU-Net's rule: a clean-up is kept only when it raises the validation mean Dice; on a tie
// the candidate with fewer steps wins.
size_t best_postprocessing(const std::vector<double>& candidate_mean_dice);

// checkpoint.pt: network weights, optimiser state, epoch, RNG state, the options and the log.
struct Checkpoint {
  int64_t epoch = 0;
  int64_t world_size = 1;  // processes that trained it; a resumed run needs as many
  std::string options_json, info_json, history_json;
};
// Written through write_file_atomically.
void save_checkpoint(const std::filesystem::path& path, SegNetImpl& net, torch::optim::Optimizer& optimizer,
                     at::Generator& gen, const Checkpoint& meta);
torch::serialize::InputArchive open_checkpoint(const std::filesystem::path& path);
Checkpoint read_checkpoint_meta(torch::serialize::InputArchive& archive);
std::string history_to_json(const std::vector<EpochLog>& history);
std::vector<EpochLog> history_from_json(const std::string& text);

// seg-train --cuda-graph: one training step that reads and writes the same tensors every time
// (the batch's rows, its augmentation draws and the learning rate are copied into fixed buffers
// first, and the optimiser works out its scalars on the device), so that a CUDA graph can
// record it once and replay it: one launch a step instead of hundreds. The first steps run
// eagerly, the warm-up a capture needs; on the CPU every step does, which is how the step
// itself is tested (tests/libseg/test_train.cpp). The pipeline must hold recordable
// augmentations only (check_run_settings).
class GraphedStep {
 public:
  GraphedStep(SegNet net, torch::optim::Optimizer& optimizer, bool adamw, const DeviceData& data, at::Tensor class_weights,
              std::string loss, const AugmentPipeline& pipeline, at::Tensor loss_sum);
  ~GraphedStep();

  // One step on these rows of the data, with these augmentation draws, at this learning rate.
  // Queued only: no host-device sync.
  void run(const at::Tensor& rows, const BatchDraws& draws, double lr);
  void before_checkpoint();

 private:
  void step();

  SegNet net_;
  std::unique_ptr<DeviceStepAdam> adam_;
  const DeviceData& data_;
  at::Tensor class_weights_;
  std::string loss_;
  const AugmentPipeline& pipeline_;
  at::Tensor loss_sum_, rows_;
  BatchDraws draws_;  // fixed buffers on the device, made at the first step
  std::unique_ptr<CudaGraph> graph_;  // none on the CPU
  int eager_steps_ = 0;
};

}  // namespace seg
