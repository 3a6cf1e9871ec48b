#pragma once
// Training a network on a data set, the notebook's recipe by default, with checkpoints and
// resume.
#include <seg/dataset.h>
#include <seg/distributed.h>
#include <seg/model_file.h>
#include <seg/postprocess.h>
#include <seg/weights.h>

#include <filesystem>
#include <string>
#include <vector>

namespace seg {

struct TrainOptions {
  std::string architecture = "fcn";
  int64_t epochs = 50;
  int64_t batch = 3;              // shuffled every epoch; the last partial batch is dropped
  double lr = 1e-3;               // Adam
  uint64_t seed = 42;
  WeightMode weight_mode = WeightMode::power;
  double weight_power = 0.35;     // class weights from the train split's label counts
  double augment_scale = 0.1;     // theta = I + scale * randn; 0 switches augmentation off
  double augment_intensity = 0.0; // random gamma, contrast and brightness (seg::random_intensity); 0: off
  double augment_elastic = 0.0;   // small elastic warp on top of the affine one (seg::random_elastic_draws); 0: off
  double augment_texture = 0.0;   // random blur, sharpening and noise (seg::random_texture); 0: off
  double augment_processing = 0.0;  // random histogram equalisation and local contrast (seg::random_processing); 0: off
  double augment_opacity = 0.0;   // random soft opacities, as of diseased lungs (seg::random_opacity); 0: off
  double augment_devices = 0.0;   // probability of tubes, wires and a pacemaker drawn in (seg::random_devices); 0: off
  double augment_zoom = 0.0;      // field of view wider or narrower by up to 1 + zoom (seg::random_affine_theta); 0: off
  double augment_rotation = 0.0;  // films turned by up to this many degrees either way (seg::random_affine_theta); 0: off
  int64_t val_every = 5;          // validate after every k-th epoch (and after the last); 0: never
  // checkpoint.pt after an epoch once this many seconds have passed since the last one, and
  // after the first and the last epoch; 0: after every epoch. Each write holds training up (a
  // light-unet checkpoint is 46 MB), which after every epoch is a good part of a GPU run.
  double checkpoint_every_s = 30;
  std::string train_split = "train";
  std::string val_split = "test"; // empty or absent from the data: no validation
  std::string normalization = "dataset";  // "dataset" (z-score of the train split) or "image"
  std::string device = "auto";
  bool deterministic = false;     // LibTorch's deterministic algorithms (CUDA needs it for repeatability)
  std::string loss = "ce";        // "ce" (weighted cross-entropy) or "ce+dice" (plus soft Dice over the classes)
  std::string optimizer = "adam"; // "adam" or "adamw"
  double weight_decay = 0.0;
  std::string schedule = "constant";  // "constant", "onecycle" (warm-up 30 %, cosine down) or "poly" (0.9)
  // "float32", or "bfloat16": the forward pass and loss under LibTorch's autocast (bfloat16
  // matrix work, float32 weights, reductions and optimiser), on the run's device.
  std::string precision = "float32";
  bool channels_last = false;     // weights and inputs in NHWC memory order (cuDNN's fastest on tensor cores)
  // Each step recorded once as a CUDA graph and replayed (seg/cuda_graph.h): for networks
  // whose steps the host cannot launch as fast as the GPU runs them. Affine augmentation,
  // float32 and one process only; on the CPU the same fixed-buffer step runs eagerly.
  bool cuda_graph = false;
  // A model file or run folder to start from instead of random weights (fine-tuning: on other
  // data, at another resolution). Same network and class table; its normalisation is kept.
  std::string init_from;
  // Structures the data's labels drew others over (JSRT/SCR: each lung under its clavicle),
  // recorded in the model for seg-segment --whole; empty: those of the --init model, if any.
  std::vector<Overlap> overlaps;

  std::string to_json() const;
  static TrainOptions from_json(const std::string& text, const std::string& source);
};

struct EpochLog {
  int64_t epoch = 0;               // 1-based
  double loss = 0.0;               // mean training loss over the epoch's steps
  double seconds = 0.0;            // wall time of the epoch's training steps and validation
  std::vector<double> val_dice;    // per label 1..C-1, empty when not validated this epoch
  double mean_dice() const;
};

struct StepProgress {
  int64_t epoch, epochs, step, steps;
  double loss;                     // running mean over the epoch so far
  double images_per_second;
  double seconds_left;             // estimate for the whole run
};

// A network's recommended recipe: the options `--model NAME` sets before the user's own.
// Networks without one keep the notebook's recipe.
void apply_recipe_defaults(const std::string& architecture, TrainOptions& options);

// Learning rate at `step` of `total_steps` for the schedule (step counted from 0).
double scheduled_lr(const std::string& schedule, double base_lr, int64_t step, int64_t total_steps);

// The loss of a step: logits (B x C x h x w, any h x w) upsampled bilinearly to the
// labels' grid (B x H x W channel indices), cross-entropy weighted by class_weights, plus for
// loss == "ce+dice" the soft Dice loss pooled over the batch (nnU-Net's batch Dice).
at::Tensor training_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& class_weights,
                         const std::string& loss);
// Deep supervision (nnU-Net's): the loss of each of a network's outputs (forward_supervised:
// full resolution first, then coarser), weighted 1, 1/2, 1/4, ... and normalised to sum to 1.
at::Tensor training_loss(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                         const at::Tensor& class_weights, const std::string& loss);

// bfloat16 autocast on one device type for the scope's lifetime (--precision bfloat16): matrix
// work in bfloat16, softmax, losses and reductions in float32, as LibTorch's autocast lists say.
// bfloat16 keeps float32's exponent, so no loss scaling is needed (float16 would need it).
class AutocastScope {
 public:
  AutocastScope(bool enabled, at::DeviceType type);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  void set(bool on) const;
  bool enabled_;
  at::DeviceType type_;
};

// Callbacks for a terminal or a log; the defaults do nothing.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_start(const std::string& device, int64_t trainable_parameters, int64_t train_cases,
                        int64_t val_cases, int64_t first_epoch) {}
  // Step progress costs a device read (a sync on CUDA), so it is only made for observers
  // that show it.
  virtual bool wants_steps() const { return false; }
  virtual void on_step(const StepProgress& progress) {}  // at most a few times a second
  virtual void on_epoch(const EpochLog& record, const std::vector<EpochLog>& history) {}
};

struct TrainResult {
  Model model;
  std::vector<EpochLog> history;
};

// Trains on data's train split, validates on its val split, and writes into run_dir:
// model.pth (the model file; also after every validation, so an interrupted run leaves the
// best-so-far usable), checkpoint.pt (weights, Adam state, epoch, RNG state, log; written
// after an epoch every options.checkpoint_every_s, and after the last), log.csv. Every file is
// written atomically.
// With resume = true the options come from run_dir's checkpoint and training continues
// after its last finished epoch (`options` then only sets epochs, to extend a run).
// With a communicator of N > 1 ranks (data parallel, as PyTorch's DDP): every rank holds the
// data and trains `batch` cases of each step's global batch of N x batch, the same cases and
// augmentation one process with batch N x batch would draw; gradients are averaged every
// step, validation is shared out, and only rank 0 writes into run_dir. Resuming needs the
// same N and run_dir visible to every rank.
TrainResult train_network(const Dataset& data, const TrainOptions& options,
                          const std::filesystem::path& run_dir, TrainObserver* observer = nullptr,
                          bool resume = false, Communicator* comm = nullptr);

// The options a run folder was started with (from its checkpoint); seg::Error if none.
TrainOptions read_run_options(const std::filesystem::path& run_dir);

// log.csv text: epoch,loss,seconds,dice_<class>...,mean_dice (empty cells when not validated).
std::string format_log_csv(const std::vector<EpochLog>& history, const ClassTable& classes);

}  // namespace seg
