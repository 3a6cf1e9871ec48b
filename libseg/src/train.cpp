#include <seg/augment_pipeline.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/intensity_range.h>
#include <seg/postprocess.h>
#include <seg/metrics.h>
#include <seg/predict.h>
#include <seg/segmenter.h>
#include <seg/train.h>
#include <seg/weights.h>

#include "training_parts.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <optional>

namespace seg {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

AutocastScope::AutocastScope(bool enabled, at::DeviceType type) : enabled_(enabled), type_(type) { set(true); }

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  set(false);
  at::autocast::clear_cache();
}

void AutocastScope::set(bool on) const {
  if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::set_autocast_enabled(type_, on);
#else  // LibTorch 1.13 (Debian 12): one switch per device type
  if (type_ == at::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(on);
  }
#endif
}

double EpochLog::mean_dice() const {
  if (val_dice.empty()) return std::nan("");
  double s = 0;
  for (double d : val_dice) s += d;
  return s / static_cast<double>(val_dice.size());
}

double scheduled_lr(const std::string& schedule, double base_lr, int64_t step, int64_t total_steps) {
  const double t = total_steps > 1 ? static_cast<double>(step) / static_cast<double>(total_steps - 1) : 1.0;
  if (schedule == "onecycle") {
    const double warm = 0.3, start = base_lr / 25.0, end = base_lr / 1e4;
    const double pi = 3.14159265358979323846;
    if (t < warm) return start + (base_lr - start) * 0.5 * (1 - std::cos(pi * t / warm));
    return end + (base_lr - end) * 0.5 * (1 + std::cos(pi * (t - warm) / (1 - warm)));
  }
  if (schedule == "poly") return base_lr * std::pow(1.0 - std::min(t, 1.0), 0.9);
  return base_lr;
}

namespace {
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The rows of `cases`, as a data set of their own whose one split is `split`.
Dataset rows_of(const Dataset& data, const std::vector<std::string>& cases, const std::string& split) {
  Dataset view = data;
  view.splits = {{split, cases}};
  return view.subset(split);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Recipe& recipe, SegNet& net) {
  if (recipe.optimizer == "adamw")
    return std::make_unique<MultiTensorAdamW>(net->parameters(),
                                              torch::optim::AdamWOptions(recipe.lr).weight_decay(recipe.weight_decay));
  return std::make_unique<MultiTensorAdam>(net->parameters(),
                                           torch::optim::AdamOptions(recipe.lr).weight_decay(recipe.weight_decay));
}

// The model a run starts from (its init), checked against the recipe and the data.
std::optional<Model> start_model(const Recipe& recipe, const Dataset& data) {
  if (recipe.init.empty()) return std::nullopt;
  Model start = load_model(recipe.init);
  const NetworkSpec& have = start.info.network;
  if (have.architecture != recipe.network || have.num_classes != data.classes.size() || have.in_channels != 1)
    throw Error(recipe.init, "is a " + have.architecture + " with " + std::to_string(have.num_classes) + " classes; fine-tuning it as a " +
                                 recipe.network + " on " + std::to_string(data.classes.size()) +
                                 " classes is not possible (start from a " + recipe.network + " with the data's class table)");
  if (start.info.classes.entries != data.classes.entries)
    throw Error(recipe.init, "its class table differs from the data's (" + data.source + "); fine-tune on data with the same labels");
  return start;
}

// What inference needs of a new run's model: network, classes, size, normalisation, framing,
// overlaps; a fine-tune keeps its start model's normalisation and record.
ModelInfo describe_new_model(const Dataset& data, const Dataset& train, const TrainOptions& options,
                             const std::optional<Model>& start) {
  ModelInfo info;
  info.network = {options.recipe.network, 1, data.classes.size()};
  info.classes = data.classes;
  info.input_size = {train.images.size(1), train.images.size(2)};
  info.normalization.mode = options.recipe.normalization;
  info.framing = measure_framing(train.labels, data.source);
  // Given, or the start model's: the same labels, drawn the same way.
  info.overlaps = options.overlaps.empty() && start ? start->info.overlaps : options.overlaps;
  check_overlaps(info.overlaps, info.classes, data.source);
  if (start) {
    // The weights expect the inputs they were trained on.
    info.normalization = start->info.normalization;
    // The lineage: what the starting model was trained on and how (its own "init" nested in
    // turn), so that a fine-tuned model keeps the record of every run behind it.
    info.provenance_json = json{{"init", json::parse(start->info.provenance_json)}}.dump();
  } else if (options.recipe.normalization == "dataset") {
    auto pixels = train.images.to(torch::kDouble);
    info.normalization.mean = pixels.mean().item<double>();
    info.normalization.std = pixels.std().item<double>();
    if (!(info.normalization.std > 0)) throw Error(data.source, "the training images are constant; nothing to learn");
  }
  if (info.normalization.mode == "dataset") info.training_intensity = training_intensity_range(train.images);
  return info;
}

// One run of train_network, from its options to its last epoch.
class TrainingRun {
 public:
  TrainingRun(const Dataset& data, const TrainOptions& requested, const fs::path& run_dir, TrainObserver& watch, bool resume,
              Communicator* comm);
  TrainResult run();

 private:
  void read_checkpoint(const TrainOptions& requested);
  void check_and_set_up();
  void build(const std::optional<Model>& start);
  void train_epoch(int64_t epoch);
  void step(const at::Tensor& index, const BatchDraws& draws, double lr);
  void report_step(int64_t epoch, int64_t step, Clock::time_point& last_report);
  void end_epoch(EpochLog& record, Clock::time_point epoch_start);
  void choose_postprocessing(const Validation& scored);
  void choose_reframing();
  void write_model();

  const Dataset& data_;
  TrainOptions options_;
  const fs::path run_dir_, checkpoint_path_;
  TrainObserver& watch_;
  const bool resume_;
  Communicator* comm_;
  int64_t rank_ = 0, world_ = 1;
  Checkpoint meta_;
  std::unique_ptr<torch::serialize::InputArchive> resume_archive_;  // (std::optional of it: clang rejects its copy constructor)
  ValidationCases cases_;
  Dataset train_;
  at::Device device_ = at::kCPU;
  int64_t global_batch_ = 0, steps_ = 0;
  ModelInfo info_;
  at::Generator gen_;
  SegNet net_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<EpochLog> history_;
  int64_t first_epoch_ = 1;
  at::Tensor class_weights_, loss_sum_;
  DeviceData train_data_, val_data_;
  AugmentPipeline pipeline_{AugmentOptions{}};
  std::unique_ptr<GraphedStep> graphed_;
  Model model_;
  json postprocessing_scores_;  // candidate -> validation mean Dice, once scored
  json reframing_scores_;       // validation mean Dice without and with reframing, once scored
  json init_record_;            // the start model's record (kept in the checkpoint's model info)
  Clock::time_point run_start_, last_checkpoint_;
  int64_t steps_done_this_run_ = 0;
};

TrainingRun::TrainingRun(const Dataset& data, const TrainOptions& requested, const fs::path& run_dir, TrainObserver& watch,
                         bool resume, Communicator* comm)
    : data_(data), options_(requested), run_dir_(run_dir), checkpoint_path_(run_dir / "checkpoint.pt"), watch_(watch),
      resume_(resume), comm_(comm && comm->size() > 1 ? comm : nullptr) {
  if (resume_) read_checkpoint(requested);
  check_and_set_up();
  std::optional<Model> start;  // the weights to fine-tune (a resumed run has its own)
  if (!resume_) start = start_model(options_.recipe, data_);
  if (start) options_.recipe.normalization = start->info.normalization.mode;
  if (resume_) {
    info_ = model_info_from_json(meta_.info_json, checkpoint_path_.string());
    if (!info_.framing) info_.framing = measure_framing(train_.labels, data_.source);  // a run begun before it was recorded
  } else {
    info_ = describe_new_model(data_, train_, options_, start);
    // With no cases to validate on, the run cannot choose a clean-up or whether to reframe: it
    // keeps the choices its start model made on its own validation cases (a last stage that
    // trains on every case, those included).
    if (start && cases_.val.empty()) {
      info_.postprocessing = start->info.postprocessing;
      if (!start->info.framing) info_.framing.reset();
    }
  }
  if (info_.classes.entries != data_.classes.entries)
    throw Error(data_.source, "its class table differs from the run's; resume on the same data");
  build(start);
}

void TrainingRun::read_checkpoint(const TrainOptions& requested) {
  resume_archive_ = std::make_unique<torch::serialize::InputArchive>(open_checkpoint(checkpoint_path_));
  meta_ = read_checkpoint_meta(*resume_archive_);
  options_ = train_options_from_json(meta_.options_json, checkpoint_path_.string());
  options_.recipe.epochs = std::max(requested.recipe.epochs, options_.recipe.epochs);
}

void TrainingRun::check_and_set_up() {
  const Recipe& recipe = options_.recipe;
  check_recipe(recipe);
  check_run_settings(options_.run, recipe, comm_ != nullptr);
  if (!data_.labels.defined()) throw Error(data_.source, "has no label maps; training needs them");
  rank_ = comm_ ? comm_->rank() : 0;
  world_ = comm_ ? comm_->size() : 1;
  if (resume_ && meta_.world_size != world_)
    throw UsageError(checkpoint_path_.string() + " was trained by " + std::to_string(meta_.world_size) +
                     " processes; resume it with as many (this run has " + std::to_string(world_) + ")");
  if (options_.run.deterministic) {
    // cuBLAS repeats itself only with a fixed workspace (NVIDIA's documented setting), read when
    // its first handle is made: set here unless the user chose one.
    setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
    // warn_only: bilinear upsampling's backward on CUDA (in the loss, and light-unet's decoder)
    // has no deterministic kernel; stopping every CUDA run at its first step helps no one.
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
  }
  check_batch_fits(data_, recipe, world_);
  cases_ = choose_validation_cases(data_, recipe);
  train_ = rows_of(data_, cases_.train, recipe.train_split);
  // A step takes batch cases on each rank: batch x world cases in all.
  global_batch_ = recipe.batch * world_;
  steps_ = train_.size() / global_batch_;
  device_ = parse_device(options_.run.device);
  // Fixed shapes every step: let cuDNN pick its fastest kernels once (not when asked to be deterministic).
  if (device_.is_cuda() && !options_.run.deterministic) at::globalContext().setBenchmarkCuDNN(true);
}

void TrainingRun::build(const std::optional<Model>& start) {
  const Recipe& recipe = options_.recipe;
  torch::manual_seed(recipe.seed);  // initial weights
  gen_ = at::make_generator<at::CPUGeneratorImpl>(recipe.seed);
  net_ = make_network(info_.network);
  net_->to(device_);
  optimizer_ = make_optimizer(recipe, net_);
  if (resume_) {
    torch::serialize::InputArchive model_archive, optimizer_archive;
    resume_archive_->read("model", model_archive);
    resume_archive_->read("optimizer", optimizer_archive);
    net_->load(model_archive);
    net_->to(device_);
    optimizer_->load(optimizer_archive);
    at::Tensor rng;
    resume_archive_->read("rng_state", rng);
    gen_.set_state(rng);
    history_ = history_from_json(meta_.history_json);
    first_epoch_ = meta_.epoch + 1;
  } else if (start) {
    torch::NoGradGuard no_grad;
    const auto source = start->net->named_parameters(), source_buffers = start->net->named_buffers();
    for (auto& p : net_->named_parameters()) p.value().copy_(source[p.key()]);
    for (auto& b : net_->named_buffers()) b.value().copy_(source_buffers[b.key()]);
  }
  if (options_.run.channels_last) use_channels_last(*net_);
  if (comm_) {  // every rank starts from rank 0's weights
    std::vector<at::Tensor> state = net_->parameters();
    for (const auto& b : net_->buffers()) state.push_back(b);
    comm_->broadcast(state);
  }
  net_->train();
  const auto counts = label_counts(labels_to_channels(train_.labels, info_.classes), info_.classes.size());
  class_weights_ = class_weights(counts, parse_weight_mode(recipe.class_weights.mode), recipe.class_weights.power).to(device_);
  train_data_ = to_device(train_, info_.normalization, info_.classes, device_);
  if (!cases_.val.empty()) val_data_ = to_device(rows_of(data_, cases_.val, "validation"), info_.normalization, info_.classes, device_);
  pipeline_ = AugmentPipeline(recipe.augmentation);
  loss_sum_ = torch::zeros({}, torch::TensorOptions().device(device_));  // the epoch's, read once
  if (options_.run.cuda_graph)
    graphed_ = std::make_unique<GraphedStep>(net_, *optimizer_, recipe.optimizer == "adamw", train_data_, class_weights_,
                                             recipe.loss, pipeline_, loss_sum_);
  model_ = Model{info_, net_};
  const json provenance = info_.provenance_json.empty() ? json::object() : json::parse(info_.provenance_json);
  init_record_ = provenance.is_object() ? provenance.value("init", json()) : json();
}

TrainResult TrainingRun::run() {
  watch_.on_start({device_.str(), count_trainable_parameters(*net_), train_.size(), static_cast<int64_t>(cases_.val.size()),
                   cases_.source, cases_.note, first_epoch_});
  run_start_ = last_checkpoint_ = Clock::now();
  for (int64_t epoch = first_epoch_; epoch <= options_.recipe.epochs; ++epoch) train_epoch(epoch);
  if (first_epoch_ > options_.recipe.epochs) {  // nothing left to train: refresh the model file
    if (!cases_.val.empty()) choose_postprocessing(validate(*net_, val_data_, info_.classes, comm_, true));
    if (rank_ == 0) write_model();
  }
  net_->eval();
  return {model_, history_};
}

void TrainingRun::train_epoch(int64_t epoch) {
  const Recipe& recipe = options_.recipe;
  const auto epoch_start = Clock::now();
  auto last_report = epoch_start;
  const auto order = upload(torch::randperm(train_.size(), gen_, torch::kLong), device_);
  const DrawShape shape{global_batch_, train_data_.images.size(2), train_data_.images.size(3)};
  loss_sum_.zero_();
  for (int64_t step = 0; step < steps_; ++step) {
    // Every rank draws the same global batch and its augmentation, and takes its own slice:
    // N ranks with batch B follow one process with batch N x B case for case.
    const auto index = order.narrow(0, (step * world_ + rank_) * recipe.batch, recipe.batch);
    const double lr = recipe.schedule != "constant"
                          ? scheduled_lr(recipe.schedule, recipe.lr, (epoch - 1) * steps_ + step, recipe.epochs * steps_)
                          : recipe.lr;
    const BatchDraws draws = pipeline_.draw(shape, gen_);
    if (graphed_) graphed_->run(index, draws, lr);
    else this->step(index, draws.slice(rank_ * recipe.batch, recipe.batch), lr);
    ++steps_done_this_run_;
    report_step(epoch, step, last_report);
  }
  EpochLog record;
  record.epoch = epoch;
  end_epoch(record, epoch_start);
}

void TrainingRun::step(const at::Tensor& index, const BatchDraws& draws, double lr) {
  auto [x, y] = pipeline_.apply(train_data_.images.index_select(0, index), train_data_.labels.index_select(0, index), draws);
  if (options_.recipe.schedule != "constant")
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  clear_gradients(net_->parameters());
  if (options_.run.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor loss;
  {
    const AutocastScope autocast(options_.run.precision == "bfloat16", device_.type());
    loss = training_loss(net_->forward_supervised(x), y, class_weights_, options_.recipe.loss);
  }
  loss.backward();
  if (comm_) comm_->average_gradients(net_->parameters());
  optimizer_->step();
  loss_sum_ += loss.detach();
}

void TrainingRun::report_step(int64_t epoch, int64_t step, Clock::time_point& last_report) {
  if (!watch_.wants_steps() || !(seconds_since(last_report) > 0.25 || step + 1 == steps_)) return;
  last_report = Clock::now();
  const double elapsed = seconds_since(run_start_);
  const double per_step = elapsed / static_cast<double>(steps_done_this_run_);
  const double steps_left = static_cast<double>((options_.recipe.epochs - epoch) * steps_ + (steps_ - step - 1));
  watch_.on_step({epoch, options_.recipe.epochs, step + 1, steps_, loss_sum_.item<double>() / static_cast<double>(step + 1),
                  static_cast<double>(global_batch_) / per_step, per_step * steps_left});
}

void TrainingRun::end_epoch(EpochLog& record, Clock::time_point epoch_start) {
  const Recipe& recipe = options_.recipe;
  const int64_t epoch = record.epoch;
  if (comm_) comm_->all_reduce_sum(loss_sum_);
  record.loss = loss_sum_.item<double>() / static_cast<double>(steps_ * world_);  // one device read an epoch
  if (!std::isfinite(record.loss))
    throw Error(run_dir_.string(), "the training loss is " + std::string(std::isnan(record.loss) ? "NaN" : "infinite") +
                                       " at epoch " + std::to_string(epoch) +
                                       ": training diverged, and the epoch was not saved; start again with a lower learning "
                                       "rate or milder augmentation");
  const bool last = epoch == recipe.epochs;
  const bool validate_now = !cases_.val.empty() && (epoch % recipe.validation.every == 0 || last);
  if (validate_now) {
    // After the last epoch the clean-ups are scored too, and the best kept.
    const auto scored = validate(*net_, val_data_, info_.classes, comm_, last);
    record.val_dice = scored.dice;
    if (last) choose_postprocessing(scored);
  }
  record.seconds = seconds_since(epoch_start);
  history_.push_back(record);
  if (rank_ == 0) {  // only rank 0 writes the model, checkpoints and logs
    write_file_atomically(run_dir_ / "log.csv", format_log_csv(history_, info_.classes));
    if (validate_now || last) write_model();
    // The first epoch's too, so that a started run can always be resumed.
    if (epoch == first_epoch_ || last || seconds_since(last_checkpoint_) >= options_.run.checkpoint_every_s) {
      if (graphed_) graphed_->before_checkpoint();
      save_checkpoint(checkpoint_path_, *net_, *optimizer_, gen_,
                      {epoch, world_, train_options_to_json(options_), model_info_to_json(info_), history_to_json(history_)});
      last_checkpoint_ = Clock::now();
    }
  }
  watch_.on_epoch(record, history_);
}

void TrainingRun::choose_postprocessing(const Validation& scored) {
  const auto& candidates = postprocessing_candidates();
  postprocessing_scores_ = json::object();
  for (size_t k = 0; k < candidates.size(); ++k)
    postprocessing_scores_[postprocessing_candidate_name(candidates[k])] = scored.candidate_mean_dice[k];
  model_.info.postprocessing = candidates[best_postprocessing(scored.candidate_mean_dice)];
  choose_reframing();
}

// Reframing is kept unless it lowers the validation cases' mean Dice (segmented as seg-segment
// would, with the chosen clean-up): it is there for films framed unlike the training films, so
// on validation films framed alike it rightly changes nothing, and a tie keeps it. Without it
// the model records no framing, and seg-segment makes one pass.
void TrainingRun::choose_reframing() {
  model_.info.framing = info_.framing;
  if (!info_.framing || cases_.val.empty() || rank_ != 0) return;
  const Dataset val = rows_of(data_, cases_.val, "validation");
  const auto truth = labels_to_channels(val.labels, info_.classes);
  auto mean_dice = [&](bool reframe) {
    SegmenterOptions options;
    options.predict.reframe = reframe;
    options.postprocessing = model_.info.postprocessing;
    const Segmenter segmenter({model_}, options, device_, data_.source);
    const auto labels = labels_to_channels(segmenter.segment(val.images).labels, info_.classes);
    return dice_per_case(labels, truth, info_.classes.size()).mean().item<double>();
  };
  const double without = mean_dice(false), with = mean_dice(true);
  net_->train();
  reframing_scores_ = {{"one pass", without}, {"reframed", with}};
  if (!(with >= without)) model_.info.framing.reset();
}

void TrainingRun::write_model() {
  json provenance = {{"dataset", data_.name},
                     {"source", data_.source},
                     {"train_split", options_.recipe.train_split},
                     {"train_cases", train_.size()},
                     {"recipe", json::parse(recipe_to_json(options_.recipe))},
                     {"run", json::parse(train_options_to_json(options_))["run"]},
                     {"recipe_name", options_.recipe_name},
                     {"overridden", options_.overridden},
                     {"validation", cases_.source},
                     {"val_cases", cases_.val},
                     {"epochs_done", history_.empty() ? 0 : history_.back().epoch},
                     {"device", device_.str()},
                     {"processes", world_}};
  for (auto it = history_.rbegin(); it != history_.rend(); ++it)
    if (!it->val_dice.empty()) {
      provenance["val_epoch"] = it->epoch;
      provenance["val_dice"] = it->val_dice;
      provenance["val_mean_dice"] = it->mean_dice();
      break;
    }
  if (!postprocessing_scores_.is_null()) provenance["postprocessing_val_mean_dice"] = postprocessing_scores_;
  if (!reframing_scores_.is_null()) provenance["reframing_val_mean_dice"] = reframing_scores_;
  if (cases_.val.empty() && init_record_.is_object()) provenance["postprocessing_chosen_by"] = "init";
  if (init_record_.is_object()) provenance["init"] = init_record_;
  model_.info.provenance_json = provenance.dump();
  save_model(model_, run_dir_ / "model.pth");
}
}  // namespace

void check_batch_fits(const Dataset& data, const Recipe& recipe, int64_t world) {
  const auto training = static_cast<int64_t>(choose_validation_cases(data, recipe).train.size());
  if (training >= recipe.batch * world) return;
  throw Error(data.source, "has " + std::to_string(training) + " cases to train on (split \"" + recipe.train_split +
                               "\"), fewer than one batch of " + std::to_string(recipe.batch * world) +
                               (world > 1 ? " (" + std::to_string(recipe.batch) + " on each of " + std::to_string(world) + " processes)"
                                          : std::string()));
}

TrainResult train_network(const Dataset& data, const TrainOptions& options, const fs::path& run_dir, TrainObserver* observer,
                          bool resume, Communicator* comm) {
  TrainObserver silent;
  return TrainingRun(data, options, run_dir, observer ? *observer : silent, resume, comm).run();
}

}  // namespace seg
