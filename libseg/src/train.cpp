#include <seg/augment.h>
#include <seg/cuda_graph.h>
#include <seg/distributed.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/metrics.h>
#include <seg/optim.h>
#include <seg/predict.h>
#include <seg/postprocess.h>
#include <seg/torch_archive.h>
#include <seg/train.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <optional>
#include <sstream>

namespace seg {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
const char* weight_mode_name(WeightMode m) {
  switch (m) {
    case WeightMode::power: return "power";
    case WeightMode::inverse: return "inverse";
    case WeightMode::none: return "none";
  }
  return "power";
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Label values -> channel indices 0..C-1 (the identity for 0..C-1 class tables).
at::Tensor labels_to_channels(const at::Tensor& labels, const ClassTable& classes) {
  std::vector<int64_t> lut(256, 0);
  for (size_t k = 0; k < classes.entries.size(); ++k) lut[static_cast<size_t>(classes.entries[k].second)] = static_cast<int64_t>(k);
  return torch::tensor(lut, torch::kLong).index_select(0, labels.to(torch::kLong).flatten()).view(labels.sizes());
}

// Everything the training loop keeps on the device, made once.
struct DeviceData {
  at::Tensor images;  // N x 1 x H x W float, normalised
  at::Tensor labels;  // N x H x W long, channel indices
};

DeviceData to_device(const Dataset& part, const Normalization& norm, const ClassTable& classes, const at::Device& device) {
  DeviceData d;
  d.images = normalize_images(part.images, norm).to(device);
  d.labels = labels_to_channels(part.labels, classes).to(device);
  return d;
}

struct Validation {
  std::vector<double> dice;                // per label 1..C-1, plain argmax (the notebook's figure)
  std::vector<double> candidate_mean_dice; // per postprocessing_candidates() entry; empty unless asked
};

// Mean Dice per label (1..C-1) over the cases, as the notebook's validation: batched, no autograd.
// With several ranks each scores every world-th case and the sums are added up. With
// `score_postprocessing` every clean-up candidate is also run on the predictions (on the CPU)
// and scored.
Validation validate(SegNetImpl& net, const DeviceData& val, const ClassTable& classes, Communicator* comm,
                    bool score_postprocessing) {
  torch::NoGradGuard no_grad;
  net.eval();
  const int64_t num_classes = classes.size();
  const int64_t n = val.images.size(0), chunk = 16;
  const auto own = comm ? torch::arange(comm->rank(), n, comm->size(), torch::TensorOptions().dtype(torch::kLong).device(val.images.device()))
                        : at::Tensor();
  const auto images = comm ? val.images.index_select(0, own) : val.images;
  const auto labels = comm ? val.labels.index_select(0, own) : val.labels;
  const auto& candidates = postprocessing_candidates();
  const int64_t rows = score_postprocessing ? static_cast<int64_t>(candidates.size()) : 1;
  // Row 0: plain argmax; row k: candidate k (row 0 again for the empty candidate).
  at::Tensor sums = torch::zeros({rows, num_classes - 1}, torch::TensorOptions().dtype(torch::kFloat).device(val.images.device()));
  for (int64_t start = 0; start < images.size(0); start += chunk) {
    const int64_t len = std::min(chunk, images.size(0) - start);
    auto x = images.narrow(0, start, len);
    auto y = labels.narrow(0, start, len);
    auto logits = upsample_logits(net.forward(x), y.size(1), y.size(2));
    sums[0] += dice_per_case(logits.argmax(1), y, num_classes).sum(0);
    if (!score_postprocessing) continue;
    const auto probabilities = torch::softmax(logits, 1).cpu();
    const auto plain = logits_to_labels(logits, classes).cpu();
    const auto truth = y.cpu();
    for (size_t k = 1; k < candidates.size(); ++k) {
      const auto cleaned = labels_to_channels(postprocess(plain, candidates[k], classes, probabilities), classes);
      sums[static_cast<int64_t>(k)] += dice_per_case(cleaned, truth, num_classes).sum(0).to(sums.device());
    }
  }
  if (comm) comm->all_reduce_sum(sums);
  net.train();
  const auto mean = (sums / static_cast<double>(n)).to(torch::kCPU, torch::kDouble).contiguous();
  Validation result;
  result.dice.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + (num_classes - 1));
  if (score_postprocessing)
    for (int64_t k = 0; k < rows; ++k) result.candidate_mean_dice.push_back(mean[k].mean().item<double>());
  return result;
}

// nnU-Net's rule: a clean-up is kept only when it raises the validation mean Dice; on a tie
// the candidate with fewer steps wins.
size_t best_postprocessing(const std::vector<double>& candidate_mean_dice) {
  size_t best = 0;
  for (size_t k = 1; k < candidate_mean_dice.size(); ++k)
    if (candidate_mean_dice[k] > candidate_mean_dice[best]) best = k;
  return best;
}

std::string history_to_json(const std::vector<EpochLog>& history) {
  json j = json::array();
  for (const auto& r : history)
    j.push_back({{"epoch", r.epoch}, {"loss", r.loss}, {"seconds", r.seconds}, {"val_dice", r.val_dice}});
  return j.dump();
}

std::vector<EpochLog> history_from_json(const std::string& text) {
  std::vector<EpochLog> history;
  for (const auto& e : json::parse(text)) {
    EpochLog r;
    r.epoch = e.at("epoch").get<int64_t>();
    r.loss = e.at("loss").get<double>();
    r.seconds = e.at("seconds").get<double>();
    r.val_dice = e.at("val_dice").get<std::vector<double>>();
    history.push_back(r);
  }
  return history;
}

struct Checkpoint {
  int64_t epoch = 0;
  int64_t world_size = 1;  // processes that trained it; --resume needs as many
  std::string options_json, info_json, history_json;
};

void save_checkpoint(const fs::path& path, SegNetImpl& net, torch::optim::Optimizer& optimizer,
                     at::Generator& gen, const Checkpoint& meta) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive, optimizer_archive;
  net.save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("epoch", c10::IValue(meta.epoch));
  archive.write("world_size", c10::IValue(meta.world_size));
  archive.write("rng_state", gen.get_state());
  archive.write("options", c10::IValue(meta.options_json));
  archive.write("model_info", c10::IValue(meta.info_json));
  archive.write("history", c10::IValue(meta.history_json));
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomically(path, bytes.str());
}

Checkpoint read_checkpoint_meta(torch::serialize::InputArchive& archive) {
  Checkpoint meta;
  c10::IValue v;
  archive.read("epoch", v);
  meta.epoch = v.toInt();
  if (archive.try_read("world_size", v)) meta.world_size = v.toInt();  // (absent before distributed training)
  archive.read("options", v);
  meta.options_json = v.toStringRef();
  archive.read("model_info", v);
  meta.info_json = v.toStringRef();
  archive.read("history", v);
  meta.history_json = v.toStringRef();
  return meta;
}

torch::serialize::InputArchive open_checkpoint(const fs::path& path) {
  if (!fs::exists(path)) throw Error(path.string(), "no checkpoint to resume from (was the run started?)");
  // Checked as every archive is before LibTorch reads it (seg/torch_archive.h).
  const std::string bytes = read_file(path);
  if (const auto problem = torch_archive_problem(bytes); !problem.empty())
    throw Error(path.string(), "checkpoint is damaged: " + problem + "; resume from a copy of the run or train again");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw Error(path.string(), "unreadable checkpoint (" + why.substr(0, why.find('\n')) + ")");
  }
  return archive;
}
}  // namespace

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

std::string TrainOptions::to_json() const {
  json j = {{"architecture", architecture}, {"epochs", epochs}, {"batch", batch}, {"lr", lr},
            {"seed", seed}, {"weight_mode", weight_mode_name(weight_mode)}, {"weight_power", weight_power},
            {"augment_scale", augment_scale}, {"augment_intensity", augment_intensity}, {"augment_elastic", augment_elastic}, {"augment_zoom", augment_zoom}, {"augment_rotation", augment_rotation}, {"augment_texture", augment_texture}, {"augment_processing", augment_processing}, {"augment_opacity", augment_opacity}, {"augment_devices", augment_devices}, {"val_every", val_every}, {"checkpoint_every_s", checkpoint_every_s}, {"train_split", train_split},
            {"val_split", val_split}, {"normalization", normalization}, {"device", device},
            {"deterministic", deterministic}, {"loss", loss}, {"optimizer", optimizer},
            {"weight_decay", weight_decay}, {"schedule", schedule}, {"init_from", init_from},
            {"precision", precision}, {"channels_last", channels_last}, {"cuda_graph", cuda_graph}};
  if (!overlaps.empty()) {
    j["overlaps"] = json::array();
    for (const auto& o : overlaps) j["overlaps"].push_back({o.under, o.over});
  }
  return j.dump();
}

TrainOptions TrainOptions::from_json(const std::string& text, const std::string& source) {
  TrainOptions o;
  try {
    const json j = json::parse(text);
    o.architecture = j.at("architecture").get<std::string>();
    o.epochs = j.at("epochs").get<int64_t>();
    o.batch = j.at("batch").get<int64_t>();
    o.lr = j.at("lr").get<double>();
    o.seed = j.at("seed").get<uint64_t>();
    o.weight_mode = parse_weight_mode(j.at("weight_mode").get<std::string>());
    o.weight_power = j.at("weight_power").get<double>();
    o.augment_scale = j.at("augment_scale").get<double>();
    o.augment_intensity = j.value("augment_intensity", 0.0);
    o.augment_elastic = j.value("augment_elastic", 0.0);
    o.augment_zoom = j.value("augment_zoom", 0.0);
    o.augment_rotation = j.value("augment_rotation", 0.0);
    o.augment_texture = j.value("augment_texture", 0.0);
    o.augment_processing = j.value("augment_processing", 0.0);
    o.augment_opacity = j.value("augment_opacity", 0.0);
    o.augment_devices = j.value("augment_devices", 0.0);
    o.val_every = j.at("val_every").get<int64_t>();
    o.checkpoint_every_s = j.value("checkpoint_every_s", o.checkpoint_every_s);
    o.train_split = j.at("train_split").get<std::string>();
    o.val_split = j.at("val_split").get<std::string>();
    o.normalization = j.at("normalization").get<std::string>();
    o.device = j.at("device").get<std::string>();
    o.deterministic = j.at("deterministic").get<bool>();
    o.loss = j.value("loss", o.loss);
    o.optimizer = j.value("optimizer", o.optimizer);
    o.weight_decay = j.value("weight_decay", o.weight_decay);
    o.schedule = j.value("schedule", o.schedule);
    o.init_from = j.value("init_from", o.init_from);
    o.precision = j.value("precision", o.precision);
    o.channels_last = j.value("channels_last", o.channels_last);
    o.cuda_graph = j.value("cuda_graph", o.cuda_graph);
    for (const auto& pair : j.value("overlaps", json::array())) o.overlaps.push_back({pair.at(0).get<int>(), pair.at(1).get<int>()});
  } catch (const json::exception& e) {
    throw Error(source, std::string("training options are malformed: ") + e.what());
  }
  return o;
}

std::string format_log_csv(const std::vector<EpochLog>& history, const ClassTable& classes) {
  std::ostringstream out;
  out << "epoch,loss,seconds";
  for (size_t k = 1; k < classes.entries.size(); ++k) out << ",dice_" << classes.entries[k].first;
  out << ",mean_dice\n" << std::setprecision(6);
  for (const auto& r : history) {
    out << r.epoch << "," << r.loss << "," << r.seconds;
    for (size_t k = 1; k < classes.entries.size(); ++k) {
      out << ",";
      if (!r.val_dice.empty()) out << r.val_dice[k - 1];
    }
    out << ",";
    if (!r.val_dice.empty()) out << r.mean_dice();
    out << "\n";
  }
  return out.str();
}

void apply_recipe_defaults(const std::string& architecture, TrainOptions& o) {
  // What our presets share, nnU-Net's kind of recipe: Dice + cross-entropy, AdamW, a
  // one-cycle schedule, small batches.
  auto modern_recipe = [&o] {
    o.batch = 3;
    o.loss = "ce+dice";
    o.optimizer = "adamw";
    o.weight_decay = 1e-4;
    o.schedule = "onecycle";
  };
  if (architecture == "fast") {
    // Measured on the 2-core CPU (bench/results.md): 0.925 mean Dice in 1.65 minutes; with
    // --epochs 40, 0.942 in 4.6. Half the notebook's affine strength: short runs learn
    // faster from gentler warps.
    modern_recipe();
    o.lr = 4e-3;
    o.augment_scale = 0.05;
    o.epochs = 14;
    o.val_every = 14;  // validate at the end only: each validation costs about 3 s
  }
  if (architecture == "res-unet") {
    // The accuracy preset (deep supervision comes from the network), made for radiographs
    // from other hospitals: each image normalised on its own, intensity augmentation, and
    // framing wider or tighter (--augment-zoom; bench/run_shift.sh: a JSRT-only recipe
    // loses the lungs when the chest fills 0.67 of the frame). Many epochs.
    modern_recipe();
    o.lr = 3e-3;
    o.normalization = "image";
    o.augment_scale = 0.1;
    o.augment_intensity = 0.2;
    o.augment_zoom = 0.5;
    o.epochs = 100;
    o.val_every = 10;
  }
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
// 1 - mean over the classes of the soft Dice, pooled over the batch (nnU-Net's batch Dice).
at::Tensor soft_dice_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const auto probs = torch::softmax(logits, 1);
  const auto onehot = F::one_hot(labels, logits.size(1)).permute({0, 3, 1, 2}).to(probs.scalar_type());
  const std::vector<int64_t> dims{0, 2, 3};
  const auto intersection = (probs * onehot).sum(dims);
  const auto total = probs.sum(dims) + onehot.sum(dims);
  return 1 - ((2 * intersection + 1e-5) / (total + 1e-5)).mean();
}

}  // namespace

at::Tensor training_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& class_weights,
                         const std::string& loss) {
  const auto full = upsample_logits(logits, labels.size(1), labels.size(2));
  auto value = F::cross_entropy(full, labels, F::CrossEntropyFuncOptions().weight(class_weights));
  if (loss == "ce+dice") value = value + soft_dice_loss(full, labels);
  return value;
}

at::Tensor training_loss(const std::vector<at::Tensor>& outputs, const at::Tensor& labels,
                         const at::Tensor& class_weights, const std::string& loss) {
  at::Tensor total;
  double weight = 1.0, weight_sum = 0.0;
  for (const auto& logits : outputs) {
    const auto term = weight * training_loss(logits, labels, class_weights, loss);
    total = total.defined() ? total + term : term;
    weight_sum += weight;
    weight /= 2;
  }
  return total / weight_sum;
}

TrainOptions read_run_options(const fs::path& run_dir) {
  auto archive = open_checkpoint(run_dir / "checkpoint.pt");
  return TrainOptions::from_json(read_checkpoint_meta(archive).options_json, (run_dir / "checkpoint.pt").string());
}

namespace {
// seg-train --cuda-graph: one training step that reads and writes the same tensors every time
// (the batch's rows, its affine draws and the learning rate are copied into fixed buffers
// first, and the optimiser works out its scalars on the device), so that a CUDA graph can
// record it once and replay it: one launch a step instead of hundreds. The first steps run
// eagerly, the warm-up a capture needs; on the CPU every step does, which is how the step
// itself is tested (tests/libseg/test_train.cpp).
class GraphedStep {
 public:
  GraphedStep(SegNet net, torch::optim::Optimizer& optimizer, bool adamw, const DeviceData& data, at::Tensor class_weights,
              std::string loss, int64_t batch, bool affine, at::Tensor loss_sum)
      : net_(std::move(net)), adam_(optimizer, adamw), data_(data), class_weights_(std::move(class_weights)),
        loss_(std::move(loss)), affine_(affine), loss_sum_(std::move(loss_sum)) {
    const auto device = data.images.device();
    rows_ = torch::zeros({batch}, torch::TensorOptions().dtype(torch::kLong).device(device));
    theta_ = torch::zeros({batch, 2, 3}, torch::TensorOptions().dtype(torch::kFloat).device(device));
    if (device.is_cuda()) graph_ = std::make_unique<CudaGraph>();
  }

  // One step on these rows of the data, with these affine draws (batch x 2 x 3; undefined
  // without augmentation), at this learning rate. Queued only: no host-device sync.
  void run(const at::Tensor& rows, const at::Tensor& theta, double lr) {
    rows_.copy_(rows, /*non_blocking=*/true);
    if (affine_) theta_.copy_(theta, /*non_blocking=*/true);
    adam_.set_lr(lr);
    auto body = [this] { step(); };
    if (!graph_) {
      clear_gradients(net_->parameters());
      step();
    } else if (eager_steps_ < kWarmupSteps) {
      clear_gradients(net_->parameters());
      graph_->run_beside(body);
      ++eager_steps_;
    } else {
      if (!graph_->captured()) {
        clear_gradients(net_->parameters());  // the captured backward writes fresh gradients, not sums
        graph_->capture(body);
      }
      graph_->replay();
    }
  }

  void before_checkpoint() { adam_.sync_step_count(); }

 private:
  static constexpr int kWarmupSteps = 3;

  void step() {
    at::Tensor x = data_.images.index_select(0, rows_), y = data_.labels.index_select(0, rows_);
    if (affine_) std::tie(x, y) = apply_affine(x, y, theta_, at::Tensor(), Padding::zeros);
    const auto loss = training_loss(net_->forward_supervised(x), y, class_weights_, loss_);
    loss.backward();
    adam_.step();
    loss_sum_.add_(loss.detach());
  }

  SegNet net_;
  DeviceStepAdam adam_;
  const DeviceData& data_;
  at::Tensor class_weights_;
  std::string loss_;
  bool affine_;
  at::Tensor loss_sum_, rows_, theta_;
  std::unique_ptr<CudaGraph> graph_;  // none on the CPU
  int eager_steps_ = 0;
};
}  // namespace

TrainResult train_network(const Dataset& data, const TrainOptions& requested, const fs::path& run_dir,
                          TrainObserver* observer, bool resume, Communicator* comm) {
  TrainObserver silent;
  TrainObserver& watch = observer ? *observer : silent;
  const fs::path checkpoint_path = run_dir / "checkpoint.pt";

  TrainOptions options = requested;
  Checkpoint meta;
  std::unique_ptr<torch::serialize::InputArchive> resume_archive;  // (std::optional of it: clang rejects its copy constructor)
  if (resume) {
    resume_archive = std::make_unique<torch::serialize::InputArchive>(open_checkpoint(checkpoint_path));
    meta = read_checkpoint_meta(*resume_archive);
    options = TrainOptions::from_json(meta.options_json, checkpoint_path.string());
    options.epochs = std::max(requested.epochs, options.epochs);
  }
  if (options.batch < 1) throw UsageError("--batch must be at least 1");
  if (options.epochs < 1) throw UsageError("--epochs must be at least 1");
  if (!(options.checkpoint_every_s >= 0)) throw UsageError("--checkpoint-every must be 0 or more seconds");
  if (options.normalization != "dataset" && options.normalization != "image")
    throw UsageError("--normalize must be \"dataset\" or \"image\"");
  if (options.loss != "ce" && options.loss != "ce+dice") throw UsageError("--loss must be \"ce\" or \"ce+dice\"");
  if (options.optimizer != "adam" && options.optimizer != "adamw") throw UsageError("--optimizer must be \"adam\" or \"adamw\"");
  if (options.schedule != "constant" && options.schedule != "onecycle" && options.schedule != "poly")
    throw UsageError("--schedule must be constant, onecycle or poly");
  if (options.precision != "float32" && options.precision != "bfloat16")
    throw UsageError("--precision must be float32 or bfloat16");
  if (!(options.augment_scale >= 0) || !(options.augment_intensity >= 0) || !(options.augment_elastic >= 0) ||
      !(options.augment_zoom >= 0) || !(options.augment_texture >= 0) || !(options.augment_processing >= 0) ||
      !(options.augment_opacity >= 0))
    throw UsageError("augmentation strengths (--augment-scale, --augment-intensity, --augment-elastic, --augment-zoom, "
                     "--augment-texture, --augment-processing, --augment-opacity) must be 0 or more");
  if (!(options.augment_rotation >= 0 && options.augment_rotation <= 180))
    throw UsageError("--augment-rotation is an angle in degrees: give 0 to 180");
  if (!(options.augment_devices >= 0 && options.augment_devices <= 1))
    throw UsageError("--augment-devices is a probability: give 0 to 1");
  if (!data.labels.defined()) throw Error(data.source, "has no label maps; training needs them");
  if (comm && comm->size() == 1) comm = nullptr;
  if (options.cuda_graph) {
    // The graphed step holds the notebook's affine augmentation and float32 only: the others
    // draw shapes or paddings per step, which a recorded graph cannot follow.
    if (options.augment_elastic > 0 || options.augment_zoom > 0 || options.augment_rotation > 0 ||
        options.augment_intensity > 0 || options.augment_processing > 0 || options.augment_texture > 0 ||
        options.augment_opacity > 0 || options.augment_devices > 0)
      throw UsageError("--cuda-graph takes the affine augmentation (--augment-scale) only; set --augment-elastic, "
                       "--augment-zoom, --augment-rotation, --augment-intensity, --augment-processing, --augment-texture, "
                       "--augment-opacity and --augment-devices to 0");
    if (options.precision != "float32" || options.channels_last)
      throw UsageError("--cuda-graph runs in float32 and the default memory order (no --precision bfloat16, --channels-last)");
    if (comm) throw UsageError("--cuda-graph runs one process (data-parallel steps exchange gradients on the host)");
  }
  const int64_t rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  const bool writer = rank == 0;  // only rank 0 writes the model, checkpoints and logs
  if (resume && meta.world_size != world)
    throw UsageError(checkpoint_path.string() + " was trained by " + std::to_string(meta.world_size) +
                     " processes; resume it with as many (this run has " + std::to_string(world) + ")");
  if (options.deterministic) {
    // cuBLAS repeats itself only with a fixed workspace (NVIDIA's documented setting), read when
    // its first handle is made: set here unless the user chose one.
    setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
    // warn_only: bilinear upsampling's backward on CUDA (in the loss, and light-unet's decoder)
    // has no deterministic kernel; stopping every CUDA run at its first step helps no one.
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
  }

  const Dataset train = data.subset(options.train_split);
  const bool has_val = !options.val_split.empty() && data.splits.count(options.val_split) && options.val_every > 0;
  // A step takes batch cases on each rank: batch x world cases in all.
  const int64_t global_batch = options.batch * world;
  const int64_t steps = train.size() / global_batch;
  if (steps < 1)
    throw Error(data.source, "split \"" + options.train_split + "\" has " + std::to_string(train.size()) +
                                 " cases, fewer than one batch of " + std::to_string(global_batch) +
                                 (world > 1 ? " (" + std::to_string(options.batch) + " on each of " + std::to_string(world) + " processes)" : std::string()));
  const at::Device device = parse_device(options.device);
  // Fixed shapes every step: let cuDNN pick its fastest kernels once (not when asked to be deterministic).
  if (device.is_cuda() && !options.deterministic) at::globalContext().setBenchmarkCuDNN(true);

  // The model's description: what inference needs.
  ModelInfo info;
  std::optional<Model> start;  // --init: the weights to fine-tune (a resumed run has its own)
  if (!resume && !options.init_from.empty()) {
    start = load_model(options.init_from);
    const NetworkSpec& have = start->info.network;
    if (have.architecture != options.architecture || have.num_classes != data.classes.size() || have.in_channels != 1)
      throw Error(options.init_from, "is a " + have.architecture + " with " + std::to_string(have.num_classes) +
                                         " classes; fine-tuning it as a " + options.architecture + " on " + std::to_string(data.classes.size()) +
                                         " classes is not possible (give --model " + have.architecture + " and data with its class table)");
    if (start->info.classes.entries != data.classes.entries)
      throw Error(options.init_from, "its class table differs from the data's (" + data.source + "); fine-tune on data with the same labels");
    // The weights expect the inputs they were trained on.
    options.normalization = start->info.normalization.mode;
  }
  if (resume) {
    info = model_info_from_json(meta.info_json, checkpoint_path.string());
    if (!info.framing) info.framing = measure_framing(train.labels);  // a run begun before it was recorded
  } else {
    info.network = {options.architecture, 1, data.classes.size()};
    info.classes = data.classes;
    info.input_size = {train.images.size(1), train.images.size(2)};
    info.normalization.mode = options.normalization;
    info.framing = measure_framing(train.labels);
    // Given, or the start model's: the same labels, drawn the same way.
    info.overlaps = options.overlaps.empty() && start ? start->info.overlaps : options.overlaps;
    check_overlaps(info.overlaps, info.classes, data.source);
    if (start) {
      info.normalization = start->info.normalization;
      // The lineage: what the starting model was trained on and how (its own "init" nested in
      // turn), so that a fine-tuned model keeps the record of every run behind it.
      info.provenance_json = json{{"init", json::parse(start->info.provenance_json)}}.dump();
    } else if (options.normalization == "dataset") {
      auto pixels = train.images.to(torch::kDouble);
      info.normalization.mean = pixels.mean().item<double>();
      info.normalization.std = pixels.std().item<double>();
      if (!(info.normalization.std > 0)) throw Error(data.source, "the training images are constant; nothing to learn");
    }
    if (info.normalization.mode == "dataset") info.training_intensity = training_intensity_range(train.images);
  }
  if (info.classes.entries != data.classes.entries)
    throw Error(data.source, "its class table differs from the run's; resume on the same data");

  torch::manual_seed(options.seed);  // initial weights
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  SegNet net = make_network(info.network);
  net->to(device);
  std::unique_ptr<torch::optim::Optimizer> optimizer_holder;
  if (options.optimizer == "adamw")
    optimizer_holder = std::make_unique<MultiTensorAdamW>(
        net->parameters(), torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));
  else
    optimizer_holder = std::make_unique<MultiTensorAdam>(
        net->parameters(), torch::optim::AdamOptions(options.lr).weight_decay(options.weight_decay));
  torch::optim::Optimizer& optimizer = *optimizer_holder;
  auto set_lr = [&](double lr) {
    for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
  };
  std::vector<EpochLog> history;
  int64_t first_epoch = 1;
  if (resume) {
    torch::serialize::InputArchive model_archive, optimizer_archive;
    resume_archive->read("model", model_archive);
    resume_archive->read("optimizer", optimizer_archive);
    net->load(model_archive);
    net->to(device);
    optimizer.load(optimizer_archive);
    at::Tensor rng;
    resume_archive->read("rng_state", rng);
    gen.set_state(rng);
    history = history_from_json(meta.history_json);
    first_epoch = meta.epoch + 1;
  } else if (start) {
    torch::NoGradGuard no_grad;
    const auto source = start->net->named_parameters(), source_buffers = start->net->named_buffers();
    for (auto& p : net->named_parameters()) p.value().copy_(source[p.key()]);
    for (auto& b : net->named_buffers()) b.value().copy_(source_buffers[b.key()]);
  }
  if (options.channels_last) use_channels_last(*net);
  const bool bfloat16 = options.precision == "bfloat16";  // the optimiser's new state follows the weights
  if (comm) {  // every rank starts from rank 0's weights
    std::vector<at::Tensor> state = net->parameters();
    for (const auto& b : net->buffers()) state.push_back(b);
    comm->broadcast(state);
  }
  net->train();

  const auto weights = class_weights(label_counts(labels_to_channels(train.labels, info.classes), info.classes.size()),
                                     options.weight_mode, options.weight_power)
                           .to(device);
  const DeviceData train_data = to_device(train, info.normalization, info.classes, device);
  DeviceData val_data;
  int64_t val_cases = 0;
  if (has_val) {
    const Dataset val = data.subset(options.val_split);
    val_data = to_device(val, info.normalization, info.classes, device);
    val_cases = val.size();
  }
  watch.on_start(device.str(), count_trainable_parameters(*net), train.size(), val_cases, first_epoch);

  const auto run_start = Clock::now();
  int64_t steps_done_this_run = 0;
  Model model{info, net};
  json postprocessing_scores;  // candidate -> validation mean Dice, once scored
  // After the last epoch: score the clean-ups on the validation split and keep the best.
  auto choose_postprocessing = [&](const Validation& scored) {
    const auto& candidates = postprocessing_candidates();
    postprocessing_scores = json::object();
    for (size_t k = 0; k < candidates.size(); ++k)
      postprocessing_scores[postprocessing_candidate_name(candidates[k])] = scored.candidate_mean_dice[k];
    model.info.postprocessing = candidates[best_postprocessing(scored.candidate_mean_dice)];
  };
  // (kept in the checkpoint's model info, so a resumed fine-tune still names its start)
  const json info_provenance = info.provenance_json.empty() ? json::object() : json::parse(info.provenance_json);
  const json init_record = info_provenance.is_object() ? info_provenance.value("init", json()) : json();
  auto write_model = [&](const std::vector<EpochLog>& hist) {
    json provenance = {{"dataset", data.name}, {"source", data.source}, {"train_split", options.train_split},
                       {"train_cases", train.size()}, {"options", json::parse(options.to_json())},
                       {"epochs_done", hist.empty() ? 0 : hist.back().epoch}, {"device", device.str()},
                       {"processes", world}};
    for (auto it = hist.rbegin(); it != hist.rend(); ++it)
      if (!it->val_dice.empty()) {
        provenance["val_split"] = options.val_split;
        provenance["val_epoch"] = it->epoch;
        provenance["val_dice"] = it->val_dice;
        provenance["val_mean_dice"] = it->mean_dice();
        break;
      }
    if (!postprocessing_scores.is_null()) provenance["postprocessing_val_mean_dice"] = postprocessing_scores;
    if (init_record.is_object()) provenance["init"] = init_record;
    model.info.provenance_json = provenance.dump();
    save_model(model, run_dir / "model.pth");
  };

  at::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device));  // the epoch's, read once
  std::unique_ptr<GraphedStep> graphed;
  if (options.cuda_graph)
    graphed = std::make_unique<GraphedStep>(net, optimizer, options.optimizer == "adamw", train_data, weights, options.loss,
                                            options.batch, options.augment_scale > 0, loss_sum);
  auto last_checkpoint = Clock::now();
  for (int64_t epoch = first_epoch; epoch <= options.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    auto last_report = epoch_start;
    const auto order = upload(torch::randperm(train.size(), gen, torch::kLong), device);
    loss_sum.zero_();
    for (int64_t step = 0; step < steps; ++step) {
      // Every rank draws the same global batch and its augmentation, and takes its own slice:
      // N ranks with batch B follow one process with batch N x B case for case.
      const auto index = order.narrow(0, (step * world + rank) * options.batch, options.batch);
      const double lr = options.schedule != "constant"
                            ? scheduled_lr(options.schedule, options.lr, (epoch - 1) * steps + step, options.epochs * steps)
                            : options.lr;
      if (graphed) {  // the same draws from the generator as the eager step below makes
        graphed->run(index, options.augment_scale > 0 ? random_affine_theta(global_batch, options.augment_scale, gen, device)
                                                      : at::Tensor(), lr);
      } else {
        at::Tensor x = train_data.images.index_select(0, index);
        at::Tensor y = train_data.labels.index_select(0, index);
        if (options.augment_scale > 0 || options.augment_elastic > 0 || options.augment_zoom > 0 ||
            options.augment_rotation > 0) {
          const double aspect = static_cast<double>(x.size(3)) / static_cast<double>(x.size(2));
          const auto theta = random_affine_theta(global_batch, options.augment_scale, gen, device, options.augment_zoom,
                                                 options.augment_rotation, aspect)
                                 .narrow(0, rank * options.batch, options.batch);
          at::Tensor displacement;
          if (options.augment_elastic > 0)
            displacement = elastic_displacement(random_elastic_draws(global_batch, options.augment_elastic, gen)
                                                    .narrow(0, rank * options.batch, options.batch),
                                                x.size(2), x.size(3), device);
          // A wider or turned field of view shows what lay beyond the image: one of the three
          // paddings, drawn per step, so that the network learns every kind of border as background.
          Padding padding = Padding::zeros;
          if (options.augment_zoom > 0 || options.augment_rotation > 0)
            padding = static_cast<Padding>(torch::randint(3, {1}, gen, torch::kLong).item<int64_t>());
          std::tie(x, y) = apply_affine(x, y, theta, displacement, padding);
        }
        // Opacities and devices are in the patient: drawn before exposure, processing and
        // detector act on the film.
        if (options.augment_opacity > 0)
          x = apply_opacity(x, random_opacity_draws(global_batch, options.augment_opacity, gen)
                                   .narrow(rank * options.batch, options.batch));
        if (options.augment_devices > 0)
          x = apply_devices(x, random_device_draws(global_batch, options.augment_devices, gen)
                                   .narrow(rank * options.batch, options.batch));
        if (options.augment_intensity > 0)
          x = apply_intensity(x, random_intensity_draws(global_batch, options.augment_intensity, gen)
                                     .narrow(1, rank * options.batch, options.batch));
        // Processing before texture: a detector's noise is not equalised with the film.
        if (options.augment_processing > 0)
          x = apply_processing(x, random_processing_draws(global_batch, x.size(3), options.augment_processing, gen)
                                      .narrow(0, rank * options.batch, options.batch));
        if (options.augment_texture > 0)
          x = apply_texture(x, random_texture_draws(global_batch, x.size(2), x.size(3), options.augment_texture, gen)
                                   .narrow(rank * options.batch, options.batch));
        if (options.schedule != "constant") set_lr(lr);
        clear_gradients(net->parameters());
        if (options.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
        at::Tensor loss;
        {
          const AutocastScope autocast(bfloat16, device.type());
          loss = training_loss(net->forward_supervised(x), y, weights, options.loss);
        }
        loss.backward();
        if (comm) comm->average_gradients(net->parameters());
        optimizer.step();
        loss_sum += loss.detach();
      }
      ++steps_done_this_run;
      if (watch.wants_steps() && (seconds_since(last_report) > 0.25 || step + 1 == steps)) {
        last_report = Clock::now();
        const double elapsed = seconds_since(run_start);
        const double per_step = elapsed / static_cast<double>(steps_done_this_run);
        const double steps_left = static_cast<double>((options.epochs - epoch) * steps + (steps - step - 1));
        watch.on_step({epoch, options.epochs, step + 1, steps, loss_sum.item<double>() / static_cast<double>(step + 1),
                       static_cast<double>(global_batch) / per_step, per_step * steps_left});
      }
    }
    EpochLog record;
    record.epoch = epoch;
    if (comm) comm->all_reduce_sum(loss_sum);
    record.loss = loss_sum.item<double>() / static_cast<double>(steps * world);  // one device read an epoch
    const bool validate_now = has_val && (epoch % options.val_every == 0 || epoch == options.epochs);
    if (validate_now) {
      const bool last = epoch == options.epochs;
      const auto scored = validate(*net, val_data, info.classes, comm, last);
      record.val_dice = scored.dice;
      if (last) choose_postprocessing(scored);
    }
    record.seconds = seconds_since(epoch_start);
    history.push_back(record);

    if (writer) {
      write_file_atomically(run_dir / "log.csv", format_log_csv(history, info.classes));
      if (validate_now || epoch == options.epochs) write_model(history);
      // The first epoch's too, so that a started run can always be resumed.
      if (epoch == first_epoch || epoch == options.epochs || seconds_since(last_checkpoint) >= options.checkpoint_every_s) {
        if (graphed) graphed->before_checkpoint();
        save_checkpoint(checkpoint_path, *net, optimizer, gen,
                        {epoch, world, options.to_json(), model_info_to_json(info), history_to_json(history)});
        last_checkpoint = Clock::now();
      }
    }
    watch.on_epoch(record, history);
  }
  if (first_epoch > options.epochs) {  // nothing left to train: refresh the model file
    if (has_val) choose_postprocessing(validate(*net, val_data, info.classes, comm, true));
    if (writer) write_model(history);
  }
  net->eval();
  return {model, history};
}

}  // namespace seg
