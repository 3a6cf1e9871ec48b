// seg-train: train a network on a data set, the notebook's recipe by default.
#include <seg/distributed.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/model_search.h>
#include <seg/models.h>
#include <seg/output.h>
#include <seg/postprocess.h>
#include <seg/predict.h>
#include <seg/train.h>
#include <torch/torch.h>

#if SEG_WITH_IMAGE_IO
#include <seg/viz/overlay.h>
#endif

#include <nlohmann/json.hpp>

#include <cmath>
#include <iomanip>
#include <optional>
#include <sstream>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;

namespace {

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else if (s >= 60) out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else out << s << "s";
  return out.str();
}

// Progress on a terminal (one rewritten line), and a line per epoch for logs and validation.
class ConsoleObserver : public TrainObserver {
 public:
  ConsoleObserver(std::ostream& out, bool terminal, const ClassTable& classes, fs::path run_dir, bool cuda_graph)
      : out_(out), terminal_(terminal), classes_(classes), run_dir_(std::move(run_dir)), cuda_graph_(cuda_graph) {}

  void on_start(const std::string& device, int64_t params, int64_t train_cases, int64_t val_cases,
                int64_t first_epoch) override {
    out_ << "training on " << device << " (" << torch::get_num_threads() << " threads): " << params
         << " trainable parameters, " << train_cases << " training cases, " << val_cases << " validation cases"
         << (first_epoch > 1 ? ", resuming at epoch " + std::to_string(first_epoch) : std::string()) << "\n";
    if (cuda_graph_ && device.rfind("cuda", 0) != 0)
      out_ << "--cuda-graph: no CUDA device, so each step runs eagerly (the same arithmetic, not recorded)\n";
  }

  bool wants_steps() const override { return terminal_; }

  void on_step(const StepProgress& p) override {
    std::ostringstream line;
    line << std::fixed << "\repoch " << p.epoch << "/" << p.epochs << "  step " << p.step << "/" << p.steps
         << "  loss " << std::setprecision(4) << p.loss << "  " << std::setprecision(1) << p.images_per_second
         << " img/s  " << duration_text(p.seconds_left) << " left   ";
    out_ << line.str() << std::flush;
  }

  void on_epoch(const EpochLog& r, const std::vector<EpochLog>& history) override {
    if (terminal_) out_ << "\r\033[K";
    out_ << std::fixed << "epoch " << r.epoch << ": loss " << std::setprecision(4) << r.loss << " ("
         << std::setprecision(1) << r.seconds << " s)";
    if (!r.val_dice.empty()) {
      out_ << "  Dice";
      for (size_t k = 0; k < r.val_dice.size(); ++k)
        out_ << " " << classes_.entries[k + 1].first << " " << std::setprecision(3) << r.val_dice[k];
      out_ << "  mean " << std::setprecision(4) << r.mean_dice();
    }
    out_ << "\n" << std::flush;
    write_curves(history);
  }

 private:
  // loss.png: training loss and validation mean Dice against the epoch.
  void write_curves(const std::vector<EpochLog>& history) {
#if SEG_WITH_IMAGE_IO
    seg::viz::Series loss{"training loss", {}, {}}, dice{"validation mean Dice", {}, {}};
    for (const auto& r : history) {
      loss.x.push_back(static_cast<double>(r.epoch));
      loss.y.push_back(r.loss);
      if (!r.val_dice.empty()) {
        dice.x.push_back(static_cast<double>(r.epoch));
        dice.y.push_back(r.mean_dice());
      }
    }
    std::vector<seg::viz::Series> series{loss};
    if (!dice.x.empty()) series.push_back(dice);
    seg::viz::write_png(run_dir_ / "loss.png", seg::viz::line_plot(series, "seg-train: " + run_dir_.filename().string(), "epoch", "loss / Dice"));
#else
    (void)history;
#endif
  }

  std::ostream& out_;
  bool terminal_;
  ClassTable classes_;
  fs::path run_dir_;
  bool cuda_graph_;  // asked for: said so when there is no GPU to record on
};

// The clean-ups scored on the validation split after the last epoch, and the one kept.
void report_postprocessing(std::ostream& out, const ModelInfo& info) {
  const auto provenance = nlohmann::json::parse(info.provenance_json, nullptr, false);
  if (provenance.is_discarded() || !provenance.contains("postprocessing_val_mean_dice")) return;
  const auto& scores = provenance["postprocessing_val_mean_dice"];
  out << "post-processing on the validation split (mean Dice):";
  for (const auto& candidate : postprocessing_candidates()) {
    const auto name = postprocessing_candidate_name(candidate);
    if (scores.contains(name) && scores[name].is_number())
      out << " " << name << " " << std::fixed << std::setprecision(5) << scores[name].get<double>();
  }
  out << "\nseg-segment will run: " << (info.postprocessing.empty() ? "no post-processing" : join(info.postprocessing, ", "))
      << "\n";
}

// The value of `--name VALUE` or `--name=VALUE` in the arguments (the last one given).
std::optional<std::string> option_value(const Args& args, const std::string& name) {
  std::optional<std::string> value;
  for (size_t i = 0; i < args.size(); ++i)
    if (args[i] == name && i + 1 < args.size()) value = args[i + 1];
    else if (args[i].rfind(name + "=", 0) == 0) value = args[i].substr(name.size() + 1);
  return value;
}

}  // namespace

int train(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("train", err, [&]() -> int {
    CLI::App app{"Train a segmentation network on a data set (the course notebook's recipe by default).", "seg-train"};
    add_max_pixels_option(app);
    TrainOptions o;
    // A network's own recipe sets the defaults; options on the command line still win. The
    // network is --model's, else that of the model --init starts from. An --init model that
    // cannot be read is reported after parsing, so that --help and usage errors come first.
    bool init_unreadable = false;
    if (const auto model = option_value(args, "--model")) o.architecture = *model;
    else if (const auto init = option_value(args, "--init")) {
      try {
        o.architecture = load_model(find_model(*init)).info.network.architecture;
      } catch (const Error&) {
        init_unreadable = true;
      }
    }
    apply_recipe_defaults(o.architecture, o);
    std::string data_path, run_dir, resume_dir, size_text, weight_mode = "power";
    int threads = 0;
    double dist_timeout = 300;
    bool dry_run = false, skip_missing = false;
    std::string networks;
    for (const auto& n : network_registry()) networks += "\n  " + n.name + ": " + n.description;
    app.add_option("--data", data_path, "data set folder (with dataset.json) or tensor pack (.pth)");
    app.add_option("--model", o.architecture, "network:" + networks)->capture_default_str();
    app.add_option("--out", run_dir, "run folder to create: model.pth, checkpoint.pt, log.csv, loss.png");
    app.add_option("--resume", resume_dir, "continue the run in this folder from its last checkpoint");
    app.add_option("--init", o.init_from,
                   "start from this model's weights (model file, run folder or model name; fine-tuning on other data "
                   "or at another size): same network and labels, its intensity normalisation is kept");
    auto* epochs_option = app.add_option("--epochs", o.epochs, "epochs (with --resume: extend the run to this many)")->capture_default_str();
    app.add_option("--batch", o.batch, "images per step")->capture_default_str();
    app.add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
    app.add_option("--seed", o.seed, "seed of the weights, shuffling and augmentation")->capture_default_str();
    app.add_option("--device", o.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (default: the machine's cores)");
    app.add_option("--weights", weight_mode, "class weights: power, inverse or none")->capture_default_str();
    app.add_option("--weights-power", o.weight_power, "p in count^-p")->capture_default_str();
    app.add_option("--augment-scale", o.augment_scale, "affine augmentation: theta = I + scale*randn (0: off)")->capture_default_str();
    app.add_option("--augment-intensity", o.augment_intensity, "random gamma/contrast/brightness strength (0: off)")->capture_default_str();
    app.add_option("--augment-texture", o.augment_texture, "random blur/sharpening/noise strength, 1: up to 250 % unsharp masking and 12 grey levels of noise (0: off)")->capture_default_str();
    app.add_option("--augment-processing", o.augment_processing, "random film processing strength: a blend towards histogram equalisation and large-scale local contrast, 1: up to fully equalised and 150 % (0: off)")->capture_default_str();
    app.add_option("--augment-opacity", o.augment_opacity, "random soft opacities in the middle of the film, as of diseased lungs (labels unchanged): strength, 1: blobs up to fully soft-tissue grey (0: off)")->capture_default_str();
    app.add_option("--augment-devices", o.augment_devices, "probability that a sample shows radiopaque tubes, lines, ECG wires and electrodes or a pacemaker, as bedside films do (labels unchanged; 0: off)")->capture_default_str();
    app.add_option("--augment-elastic", o.augment_elastic,
                   "small elastic warp: sigma of control-point offsets, 2 = image width (0: off; 0.02 is about 2.5 px at 256)")
        ->capture_default_str();
    app.add_option("--augment-zoom", o.augment_zoom,
                   "field of view wider or narrower by up to 1 + zoom, log-uniform (0: off; 0.5: chest at 0.67..1.5 of its size)")
        ->capture_default_str();
    app.add_option("--augment-rotation", o.augment_rotation,
                   "films turned by up to this many degrees either way, uniform (0: off; the affine noise alone turns about 4 degrees)")
        ->capture_default_str();
    app.add_option("--val-every", o.val_every, "validate every k epochs (0: never)")->capture_default_str();
    app.add_option("--checkpoint-every", o.checkpoint_every_s,
                   "seconds between checkpoints (checkpoint.pt, for --resume), written after an epoch; always after the first and last (0: every epoch)")
        ->capture_default_str();
    app.add_option("--train-split", o.train_split, "split to train on")->capture_default_str();
    app.add_option("--val-split", o.val_split, "split to validate on")->capture_default_str();
    app.add_option("--normalize", o.normalization, "intensity normalisation: dataset (z-score of the train split) or image (per image, percentile-clipped)")->capture_default_str();
    app.add_option("--size", size_text, "resample the data set to N or HxW before training");
    app.add_flag("--skip-missing", skip_missing, "leave out the cases whose image or label file is missing (counted) instead of stopping");
    app.add_option("--loss", o.loss, "ce (weighted cross-entropy) or ce+dice")->capture_default_str();
    app.add_option("--optimizer", o.optimizer, "adam or adamw")->capture_default_str();
    app.add_option("--weight-decay", o.weight_decay, "weight decay")->capture_default_str();
    app.add_option("--schedule", o.schedule, "learning rate: constant, onecycle or poly")->capture_default_str();
    app.add_flag("--deterministic", o.deterministic, "use LibTorch's deterministic algorithms (CUDA: where it has them)");
    app.add_option("--precision", o.precision,
                   "float32, or bfloat16: forward pass and loss under autocast (mixed precision; no faster for these networks at 256 x 256 on an H200, bench/results.md)")
        ->capture_default_str();
    app.add_flag("--channels-last", o.channels_last, "weights and inputs in NHWC memory order (cuDNN's tensor-core layout; no faster at 256 x 256 on an H200, bench/results.md)");
    app.add_flag("--cuda-graph", o.cuda_graph,
                 "record each step once as a CUDA graph and replay it (for small networks on a GPU, whose steps are launch-bound; affine augmentation and float32 only)");
    app.add_option("--dist-timeout", dist_timeout,
                   "seconds to wait for the other processes of a distributed run (rendezvous and each exchange)")
        ->capture_default_str();
    std::vector<std::string> overlaps;
    app.add_option("--overlap", overlaps,
                   "UNDER:OVER (class names or values; repeat it): the data's labels drew OVER over part of UNDER "
                   "(JSRT/SCR: right_lung:right_clavicle and left_lung:left_clavicle); the model records it for "
                   "seg-segment --whole. Default: the --init model's");
    app.add_flag("--dry-run", dry_run, "print the network's layers and trainable parameter count, train nothing");
    if (!parse(app, args, out)) return kOk;
    // Launched by torchrun, mpirun, srun or scripts/launch: one of N cooperating processes.
    const WorldInfo world = world_from_environment();
    if (!(dist_timeout > 0)) throw UsageError("--dist-timeout must be positive");
    set_threads(threads, world.local_world_size);
    if (world.distributed() && (o.device == "auto" || o.device == "cuda") && torch::cuda::is_available())
      o.device = "cuda:" + std::to_string(world.local_rank % static_cast<int>(torch::cuda::device_count()));
    o.weight_mode = parse_weight_mode(weight_mode);

    const bool resume = !resume_dir.empty();
    if (resume && !o.init_from.empty()) throw UsageError("--init starts a new run from a model; --resume continues a run: give one");
    o.init_from = find_model(o.init_from).string();  // a model name: the file it names
    if (init_unreadable) load_model(o.init_from);  // throws its one-line reason (before --dry-run names a network)
    if (dry_run) {
      auto net = make_network({o.architecture, 1, 6});
      out << o.architecture << " (1 input channel, 6 classes):\n" << describe_network(*net);
      return kOk;
    }
    if (resume && !run_dir.empty() && run_dir != resume_dir) throw UsageError("give either --out or --resume, not both");
    if (resume) run_dir = resume_dir;
    if (resume && !overlaps.empty()) throw UsageError("--overlap is recorded when a run starts; a resumed run keeps its own");
    if (run_dir.empty()) throw UsageError("--out RUN is required (or --resume RUN)");
    if (!resume) make_network({o.architecture, 1, 6});  // unknown names fail before any data is read
    const bool writer = world.rank == 0;  // the other ranks read, never write
    std::unique_ptr<Communicator> comm;
    if (world.distributed()) {
      // Meet the others first, so that a rank that then fails on its input ends the run for all.
      comm = std::make_unique<Communicator>(world, std::chrono::milliseconds(static_cast<int64_t>(dist_timeout * 1000)));
      if (writer)
        out << "distributed: " << world.world_size << " processes" << (world.launcher.empty() ? "" : " (" + world.launcher + ")")
            << ", rendezvous " << world.master_addr << ":" << world.master_port << "\n";
    }
    if (!resume && writer && fs::exists(fs::path(run_dir) / "checkpoint.pt"))
      throw Error(run_dir, "already holds a training run; use --resume " + run_dir + " or another --out");
    // run.json remembers where the data came from, so --resume needs no --data.
    const fs::path run_json = fs::path(run_dir) / "run.json";
    if (resume) {
      if (epochs_option->count() == 0) o.epochs = 0;  // keep the run's own epoch count
      if (!fs::exists(run_json)) throw Error(run_json.string(), "missing: not a seg-train run folder");
      const auto saved = nlohmann::json::parse(read_file(run_json), nullptr, false);
      if (saved.is_discarded() || !saved.contains("data")) throw Error(run_json.string(), "malformed run description");
      if (data_path.empty()) data_path = saved["data"].get<std::string>();
      if (size_text.empty()) size_text = saved.value("size", "");
    }
    if (data_path.empty()) throw UsageError("--data DIR is required");
    {
      Inputs inputs;  // the run folder may not be one of them
      inputs.add(data_path);
      inputs.add(o.init_from);
      const OutputFolder refuses_inputs(run_dir, inputs, Existing::overwrite, "");
    }

    DataRequest request;
    request.skip_missing = skip_missing;
    if (!size_text.empty()) request.size = parse_size(size_text);
    if (!resume) parse_device(o.device);  // a bad --device fails before the run folder is made
    const Dataset data = load_data(data_path, request);
    if (writer) print_data_warnings(data, "train", err);
    if (writer && !data.left_out.empty()) out << "data: " << left_out_text(data) << "\n";
    for (const auto& text : overlaps) o.overlaps.push_back(parse_overlap(text, data.classes));
    check_overlaps(o.overlaps, data.classes, "--overlap");
    const bool fresh_dir = !fs::exists(run_dir);
    if (writer) ensure_writable_dir(run_dir);
    if (resume && writer) remove_stale_temporaries(run_dir);  // what a killed run was writing
    if (!resume && writer) {
      nlohmann::json description = {{"data", fs::absolute(data_path).string()}, {"size", size_text}, {"arguments", args}};
      write_file_atomically(run_json, description.dump(1) + "\n");
    }
    ConsoleObserver console(out, is_terminal(out), data.classes, run_dir, o.cuda_graph);
    try {
      const auto result = train_network(data, o, run_dir, writer ? &console : nullptr, resume, comm.get());
      if (writer) report_postprocessing(out, result.model.info);
    } catch (...) {
      // A new run that failed before its first checkpoint leaves nothing behind.
      if (writer && !resume && !fs::exists(fs::path(run_dir) / "checkpoint.pt")) {
        std::error_code ec;
        for (const char* f : {"run.json", "log.csv", "model.pth", "loss.png"}) fs::remove(fs::path(run_dir) / f, ec);
        if (fresh_dir) fs::remove(run_dir, ec);  // only when empty
      }
      throw;
    }
    if (writer) out << "model written to " << (fs::path(run_dir) / "model.pth").string() << "\n";
    return kOk;
  });
}

}  // namespace seg::tools
