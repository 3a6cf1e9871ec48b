#pragma once
// Training a network on a data set as a recipe says (seg/recipe.h), with checkpoints and
// resume; a staged recipe runs its stages one after another.
#include <seg/dataset.h>
#include <seg/distributed.h>
#include <seg/losses.h>
#include <seg/model_file.h>
#include <seg/recipe.h>
#include <seg/validation.h>

#include <filesystem>
#include <string>
#include <vector>

namespace seg {

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

// Learning rate at `step` of `total_steps` for the schedule (step counted from 0).
double scheduled_lr(const std::string& schedule, double base_lr, int64_t step, int64_t total_steps);

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

// What a run starts with, for its observer.
struct RunStart {
  std::string device;
  int64_t trainable_parameters = 0, train_cases = 0, val_cases = 0;
  std::string validation;       // where the validation cases come from (ValidationCases::source)
  std::string validation_note;  // what differs from the recipe's rule; empty if nothing
  int64_t first_epoch = 1;
};

// Callbacks for a terminal or a log; the defaults do nothing.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_start(const RunStart& start) {}
  // Step progress costs a device read (a sync on CUDA), so it is only made for observers
  // that show it.
  virtual bool wants_steps() const { return false; }
  virtual void on_step(const StepProgress& progress) {}  // at most a few times a second
  virtual void on_epoch(const EpochLog& record, const std::vector<EpochLog>& history) {}
  // A staged run: before each stage (1-based) that runs or resumes, in its own folder.
  virtual void on_stage(int64_t stage, int64_t stages, const std::filesystem::path& stage_dir) {}
};

struct TrainResult {
  Model model;
  std::vector<EpochLog> history;
};

// Trains on the recipe's training cases and validates on its validation cases
// (choose_validation_cases), writing into run_dir: model.pth (the model file; also after
// every validation, so an interrupted run leaves the best-so-far usable), checkpoint.pt
// (weights, optimiser state, epoch, RNG state, options, log; written after an epoch every
// options.run.checkpoint_every_s, and after the last), log.csv. Every file is written
// atomically. The model records the recipe, the run settings and the validation cases.
// With resume = true the options come from run_dir's checkpoint and training continues
// after its last finished epoch (`options` then only sets epochs, to extend a run). An epoch
// whose mean loss is NaN or infinite stops the run with seg::Error before anything of it is
// written: the run diverged, and its last checkpoint and model stay as they were.
// With a communicator of N > 1 ranks (data parallel, as PyTorch's DDP): every rank holds the
// data and trains `batch` cases of each step's global batch of N x batch, the same cases and
// augmentation one process with batch N x batch would draw; gradients are averaged every
// step, validation is shared out, and only rank 0 writes into run_dir. Resuming needs the
// same N and run_dir visible to every rank.
TrainResult train_network(const Dataset& data, const TrainOptions& options,
                          const std::filesystem::path& run_dir, TrainObserver* observer = nullptr,
                          bool resume = false, Communicator* comm = nullptr);

// Throws seg::Error when `recipe` cannot train on `data` with `world` processes: its training
// cases are fewer than one step's batch (batch x world). seg-train checks every stage of a
// recipe with it before a run starts; train_network checks again.
void check_batch_fits(const Dataset& data, const Recipe& recipe, int64_t world = 1);

// A staged recipe: stage k trains in run_dir/stage-k from the model stage k - 1 made (stage 1
// from its own init, if any), with `options`' run settings and overlaps; the last stage's
// model is copied to run_dir/model.pth. With resume = true finished stages are skipped and
// the stage that was stopped resumes at its epoch.
TrainResult train_stages(const Dataset& data, const std::vector<Recipe>& stages, const TrainOptions& options,
                         const std::filesystem::path& run_dir, TrainObserver* observer = nullptr, bool resume = false,
                         Communicator* comm = nullptr);
std::filesystem::path stage_folder(const std::filesystem::path& run_dir, size_t stage);  // 1-based

// The options a run folder was started with (from its checkpoint); seg::Error if none.
TrainOptions read_run_options(const std::filesystem::path& run_dir);

// log.csv text: epoch,loss,seconds,dice_<class>...,mean_dice (empty cells when not validated).
std::string format_log_csv(const std::vector<EpochLog>& history, const ClassTable& classes);

}  // namespace seg
