// seg-train: train a network on a data set as a recipe says (the course notebook's by default).
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

#include <nlohmann/json.hpp>

#include <iomanip>
#include <sstream>

#include "common.h"
#include "support_data.h"
#include "support_recipe.h"
#include "support_train_output.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The options of how a run is carried out, by their RunSettings keys.
std::string run_flag(const std::string& key) {
  static const std::map<std::string, std::string> flags{{"device", "--device"}, {"deterministic", "--deterministic"},
      {"checkpoint_every_s", "--checkpoint-every"}, {"precision", "--precision"}, {"channels_last", "--channels-last"},
      {"cuda_graph", "--cuda-graph"}};
  const auto it = flags.find(key);
  return it == flags.end() ? std::string() : it->second;
}

struct CommandLine {
  std::string recipe, model, data, out, resume, size;
  RunSettings run;
  int threads = 0;
  double dist_timeout = 300;
  bool dry_run = false, skip_missing = false;
  std::vector<std::string> overlaps;
  RecipeOptions options;
};

void add_options(CLI::App& app, CommandLine& c) {
  app.add_option("--data", c.data, "data set folder (with dataset.json) or tensor pack (.pth)");
  app.add_option("--recipe", c.recipe, "the recipe: a file, a run folder (the recipe it ran) or the name of one of: " +
                                           join(recipe_names(), ", ") + " (default: notebook-fcn, the course notebook's)")
      ->each([&c](const std::string& name) {
        try {  // --help shows this recipe's values as the defaults
          c.options.show_defaults(recipe_stages(read_recipe(name).text, name).front());
        } catch (const std::exception&) {  // reported when the run starts
        }
      });
  std::string networks;
  // One network a line in --help; the semicolons keep them apart where help2man fills the lines.
  for (const auto& n : network_registry()) networks += (networks.empty() ? "" : ";") + ("\n  " + n.name) + ": " + n.description;
  c.options.add<std::string>(app, "--network", "network", "the network, in place of the recipe's:" + networks);
  app.add_option("--model", c.model, "a recipe's name (fast, res-unet: --recipe NAME), else a network's (--network NAME)");
  app.add_option("--out", c.out, "run folder to create: model.pth, checkpoint.pt, log.csv, loss.png, run.json");
  app.add_option("--resume", c.resume, "continue the run in this folder from its last checkpoint");
  c.options.add<std::string>(app, "--init", "init", "start from this model's network weights (model file or run folder; fine-tuning on other data or at another size): same network and labels, its intensity normalisation is kept");
  c.options.add<int64_t>(app, "--epochs", "epochs", "epochs (with --resume: extend the run to this many)");
  c.options.add<int64_t>(app, "--batch", "batch", "images per step");
  c.options.add<double>(app, "--lr", "lr", "learning rate (Adam or AdamW)");
  c.options.add<uint64_t>(app, "--seed", "seed", "seed of the network weights, shuffling and augmentation");
  app.add_option("--device", c.run.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  app.add_option("--threads", c.threads, "CPU threads (default: the machine's cores)");
  c.options.add<std::string>(app, "--weights", "class_weights.mode", "class weights of the loss, from the label counts (as seg-weights): power, inverse or none");
  c.options.add<double>(app, "--weights-power", "class_weights.power", "p in count^-p of the class weights");
  c.options.add_augmentations(app);
  c.options.add<int64_t>(app, "--val-every", "validation.every", "validate every k epochs and after the last (0: never)");
  c.options.add<int64_t>(app, "--val-holdout", "validation.holdout", "validate on this many cases held out of the train split (every k-th as listed; not trained on)");
  c.options.add<std::string>(app, "--val-split", "validation.split", "validate on this split of the data instead (empty: cases held out of the train split)");
  app.add_option("--checkpoint-every", c.run.checkpoint_every_s, "seconds between checkpoints (checkpoint.pt, for --resume), written after an epoch; always after the first and last (0: every epoch)")->capture_default_str();
  c.options.add<std::string>(app, "--train-split", "train_split", "split to train on");
  c.options.add<std::string>(app, "--normalize", "normalization", "intensity normalisation: dataset (z-score of the training cases) or image (per image, percentile-clipped)");
  app.add_option("--size", c.size, "resample the data set to N or HxW before training");
  c.options.add<std::string>(app, "--loss", "loss", "ce (weighted cross-entropy) or ce+dice");
  c.options.add<std::string>(app, "--optimizer", "optimizer", "adam or adamw");
  c.options.add<double>(app, "--weight-decay", "weight_decay", "weight decay of the network weights");
  c.options.add<std::string>(app, "--schedule", "schedule", "learning rate: constant, onecycle or poly");
  app.add_flag("--deterministic", c.run.deterministic, "use LibTorch's deterministic algorithms (CUDA: where it has them)");
  app.add_option("--precision", c.run.precision, "float32, or bfloat16: forward pass and loss under autocast (mixed precision)")->capture_default_str();
  app.add_flag("--channels-last", c.run.channels_last, "network weights and inputs in NHWC memory order (cuDNN's tensor-core layout)");
  app.add_flag("--cuda-graph", c.run.cuda_graph, "record each step once as a CUDA graph and replay it (small networks on a GPU, whose steps are launch-bound; --augment-scale and float32 only)");
  app.add_option("--dist-timeout", c.dist_timeout, "seconds to wait for the other processes of a distributed run (rendezvous and each exchange)")->capture_default_str();
  app.add_option("--overlap", c.overlaps, "UNDER:OVER (class names or values; repeat it): the data's labels drew OVER over part of UNDER (JSRT/SCR: right_lung:right_clavicle and left_lung:left_clavicle); the model records it for seg-segment --whole. Default: the --init model's");
  app.add_flag("--skip-missing", c.skip_missing,
               "leave out the cases whose image or label file is missing (counted) instead of stopping");
  app.add_flag("--dry-run", c.dry_run, "print the recipe with every value it takes and the network (for --data's classes, if given); train nothing");
}

// The recipe a new run starts from, and the keys set apart from the recipe options: --model
// names a recipe or, failing that, a network; a run starting from an --init model alone takes
// that model's network and the recipe named after it if there is one (fast, res-unet).
std::pair<RecipeText, json> choose_recipe(const CommandLine& c, std::string& name) {
  json more = json::object();
  const auto given = c.options.given_keys();
  const auto gives = [&](const std::string& key) { return std::find(given.begin(), given.end(), key) != given.end(); };
  name = c.recipe;
  if (!c.model.empty() && (gives("network") || (!c.recipe.empty() && is_recipe_name(c.model))))
    throw UsageError("--model " + c.model + " says what --recipe or --network says: give one of them");
  if (!c.model.empty() && is_recipe_name(c.model)) name = c.model;
  else if (!c.model.empty()) more["network"] = c.model;
  if (name.empty() && more.empty() && !gives("network") && gives("init")) {
    const std::string network = load_model(find_model(c.options.given()["init"].get<std::string>())).info.network.architecture;
    more["network"] = network;
    if (is_recipe_name(network)) name = network;
  }
  if (gives("validation.holdout") && !gives("validation.split")) more["validation"] = {{"split", ""}};
  if (name.empty()) name = "notebook-fcn";
  return {read_recipe(name), more};
}

int dry_run(const CommandLine& c, const TrainOptions& options, const std::vector<Recipe>& stages, std::ostream& out) {
  out << "recipe: " << options.recipe_name
      << (options.overridden.empty() ? "" : " with " + join(options.overridden, ", ") + " from the command line") << "\n"
      << stages_to_json(stages, 2) << "\nrun settings: " << json::parse(train_options_to_json(options))["run"].dump() << "\n";
  int64_t classes = 6;
  std::string whose = "6 classes, JSRT's; --data gives the data's";
  if (!c.data.empty()) {
    DataRequest request;
    request.skip_missing = c.skip_missing;
    if (!c.size.empty()) request.size = parse_size(c.size);
    const Dataset data = load_data(c.data, request);
    classes = data.classes.size();
    whose = std::to_string(classes) + " classes, the data's";
    const auto cases = choose_validation_cases(data, stages.front());
    for (const auto& stage : stages) check_batch_fits(data, stage);
    out << "training cases: " << cases.train.size() << "; validation cases: " << cases.val.size() << " (" << cases.source << ")\n";
    if (!cases.note.empty()) out << "note: " << cases.note << "\n";
  }
  const auto net = make_network({stages.back().network, 1, classes});
  out << stages.back().network << " (1 input channel, " << whose << "):\n" << describe_network(*net);
  return kOk;
}

// run.json: where the data came from and what the run is, so that --resume needs no more.
json run_description(const CommandLine& c, const Args& args, const TrainOptions& options, const std::vector<Recipe>& stages,
                     const ValidationCases& cases) {
  json settings = json::parse(train_options_to_json(options));
  settings.erase("recipe");
  return {{"data", fs::absolute(c.data).string()}, {"size", c.size}, {"skip_missing", c.skip_missing}, {"arguments", args},
          {"recipe", json::parse(stages_to_json(stages))}, {"settings", settings},
          {"validation", cases.source}, {"val_cases", cases.val}};
}

// A new run that failed before its first checkpoint leaves nothing behind.
void remove_unstarted_run(const fs::path& run_dir, bool staged, bool fresh_dir) {
  const fs::path first = staged ? stage_folder(run_dir, 1) : run_dir;
  if (fs::exists(first / "checkpoint.pt")) return;
  std::error_code ec;
  for (const fs::path& dir : {first, run_dir})
    for (const char* f : {"run.json", "log.csv", "model.pth", "loss.png"}) fs::remove(dir / f, ec);
  if (staged) fs::remove(first, ec);
  if (fresh_dir) fs::remove(run_dir, ec);  // only when empty
}

// Trains (or resumes) and reports: one recipe in run_dir, a staged one stage by stage.
int train_and_report(const Dataset& data, const TrainOptions& options, const std::vector<Recipe>& stages, const fs::path& run_dir,
                     bool resume, Communicator* comm, std::ostream& out) {
  const bool writer = !comm || comm->rank() == 0;
  ConsoleObserver console(out, is_terminal(out), data.classes, run_dir, options.run.cuda_graph);
  const auto result = stages.size() > 1 ? train_stages(data, stages, options, run_dir, writer ? &console : nullptr, resume, comm)
                                        : train_network(data, options, run_dir, writer ? &console : nullptr,
                                                        resume && fs::exists(run_dir / "checkpoint.pt"), comm);
  if (writer) {
    report_postprocessing(out, result.model.info);
    out << "model written to " << (run_dir / "model.pth").string() << "\n";
  }
  return kOk;
}

// A resumed run: its data, recipe and settings as its run.json recorded them.
// `run_flags_given`: the options of how a run is carried out (and --size, --dry-run) that the
// command line gave; a resumed run has its own.
void read_run(CommandLine& c, const fs::path& run_json, const std::vector<std::string>& run_flags_given, TrainOptions& options,
              std::vector<Recipe>& stages) {
  if (!c.out.empty() && c.out != c.resume) throw UsageError("give either --out or --resume, not both");
  const auto given = c.options.given();
  if (!c.recipe.empty() || !c.model.empty() || !c.overlaps.empty() || !run_flags_given.empty() ||
      given.size() > (given.contains("epochs") ? 1u : 0u))
    throw UsageError("--resume continues a run as it was started (its recipe, --overlap, --size, --device and the rest "
                     "are recorded" + (run_flags_given.empty() ? std::string() : "; not " + join(run_flags_given, ", ")) +
                     "): give only --epochs to extend it, and --threads or --dist-timeout");
  if (!fs::exists(run_json)) throw Error(run_json.string(), "missing: not a seg-train run folder");
  const auto saved = json::parse(read_file(run_json), nullptr, false);
  if (saved.is_discarded() || !saved.contains("data")) throw Error(run_json.string(), "malformed run description");
  try {
    if (c.data.empty()) c.data = saved["data"].get<std::string>();  // (--data: the run's data, moved)
    c.size = saved.value("size", "");
    c.skip_missing = c.skip_missing || saved.value("skip_missing", false);
  } catch (const json::exception& e) {
    throw Error(run_json.string(), "malformed run description (" + json_reason(e) + ")");
  }
  stages = saved.contains("recipe") ? recipe_stages(saved["recipe"].dump(), run_json.string()) : std::vector<Recipe>{Recipe{}};
  if (saved.contains("settings")) options = train_options_from_json(saved["settings"].dump(), run_json.string());
  const int64_t epochs = given.value("epochs", int64_t{0});
  if (stages.size() > 1 && epochs > 0) throw UsageError("--epochs extends a one-stage run; a staged run resumes as recorded");
  if (stages.size() == 1 && !fs::exists(run_json.parent_path() / "checkpoint.pt")) {
    // Stopped before its first checkpoint: it starts as recorded.
    options.recipe = stages.front();
    if (epochs > 0) options.recipe.epochs = epochs;
  } else {
    options.recipe.epochs = epochs;  // 0: the run's own
  }
}

// A new run: the recipe with the command line's options, every stage checked.
void plan_run(const CommandLine& c, bool distributed, TrainOptions& options, std::vector<Recipe>& stages) {
  std::string name;
  const auto [recipe, more] = choose_recipe(c, name);
  stages = recipe_with_options(recipe, c.options, more);
  for (auto& stage : stages)
    if (!stage.init.empty()) stage.init = find_model(stage.init).string();  // a model name: the file it names
  for (size_t k = 1; k < stages.size(); ++k) {  // a stage fine-tunes the model of the stage before
    const std::string stage = "stage " + std::to_string(k + 1);
    if (stages[k].network != stages[k - 1].network)
      throw Error(recipe.source, stage + " trains a " + stages[k].network + " network, but starts from stage " +
                                     std::to_string(k) + "'s " + stages[k - 1].network + ": a staged recipe keeps one network");
    if (stages[k].init != stages.front().init)
      throw Error(recipe.source, stage + " names init " + stages[k].init +
                                     ", but a stage after the first starts from the stage before's model; give init in the first");
  }
  options = {stages.front(), c.run, {}, name, c.options.given_keys()};
  for (const auto& key : recipe_keys(more)) options.overridden.push_back(key);
  try {
    for (const auto& stage : stages) check_run_settings(c.run, stage, distributed);
  } catch (const InvalidOption& problem) {
    report_invalid(problem, c.options, options.overridden, run_flag, recipe.source);
  }
}

// Reads the data, writes run.json for a new run, trains: what both new and resumed runs do.
int run(CommandLine& c, const Args& args, const WorldInfo& world, TrainOptions& options, const std::vector<Recipe>& stages,
        bool resume, std::ostream& out, std::ostream& err) {
  const fs::path run_dir = resume ? c.resume : c.out;
  const bool writer = world.rank == 0;  // the other ranks read, never write
  std::unique_ptr<Communicator> comm;
  if (world.distributed()) {
    // Meet the others first, so that a rank that then fails on its input ends the run for all.
    comm = std::make_unique<Communicator>(world, std::chrono::milliseconds(static_cast<int64_t>(c.dist_timeout * 1000)));
    if (writer)
      out << "distributed: " << world.world_size << " processes" << (world.launcher.empty() ? "" : " (" + world.launcher + ")")
          << ", rendezvous " << world.master_addr << ":" << world.master_port << "\n";
  }
  if (!resume && writer && fs::exists(run_dir / "run.json"))
    throw Error(run_dir.string(), "already holds a training run; use --resume " + run_dir.string() + " or another --out");
  {
    // What the run writes may be none of its inputs, nor (a new run's) any file already there.
    Inputs inputs;
    add_data_set_input(inputs, c.data);
    for (const auto& stage : stages) inputs.add(stage.init);
    const OutputFolder folder(run_dir, inputs, resume ? Existing::overwrite : Existing::refuse,
                              "a new run needs an empty or new --out folder");
    std::vector<fs::path> folders{run_dir}, outputs{run_dir / "run.json"};
    for (size_t k = 1; stages.size() > 1 && k <= stages.size(); ++k) folders.push_back(stage_folder(run_dir, k));
    for (const auto& dir : folders)
      for (const char* file : {"model.pth", "checkpoint.pt", "log.csv", "loss.png"}) outputs.push_back(dir / file);
    if (writer) folder.check(outputs);
  }
  DataRequest request;
  request.skip_missing = c.skip_missing;
  if (!c.size.empty()) request.size = parse_size(c.size);
  if (!resume) parse_device(c.run.device);  // a bad --device fails before the run folder is made
  const Dataset data = load_data(c.data, request);
  if (writer) print_data_warnings(data, "train", err);
  if (writer && !data.left_out.empty()) out << "data: " << left_out_text(data) << "\n";
  for (const auto& text : c.overlaps) options.overlaps.push_back(parse_overlap(text, data.classes));
  check_overlaps(options.overlaps, data.classes, "--overlap");
  const auto cases = choose_validation_cases(data, stages.front());
  for (const auto& stage : stages) check_batch_fits(data, stage, world.world_size);
  const bool fresh_dir = !fs::exists(run_dir);
  if (writer) ensure_writable_dir(run_dir);
  if (resume && writer) remove_stale_temporaries(run_dir);  // what a killed run was writing
  if (!resume && writer) write_file_atomically(run_dir / "run.json", run_description(c, args, options, stages, cases).dump(1) + "\n");
  try {
    return train_and_report(data, options, stages, run_dir, resume, comm.get(), out);
  } catch (...) {
    if (writer && !resume) remove_unstarted_run(run_dir, stages.size() > 1, fresh_dir);
    throw;
  }
}

}  // namespace

int train(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("train", err, [&]() -> int {
    CLI::App app{"Train a segmentation network on a data set as a recipe says (the course notebook's by default).\n"
                 "The recipe (--recipe) sets every value shown after \"=\"; the options given override it.",
                 "seg-train"};
    add_max_pixels_option(app);
    CommandLine c;
    add_options(app, c);
    try {
      c.options.show_defaults(recipe_stages(read_recipe("notebook-fcn").text, "notebook-fcn").front());
    } catch (const std::exception&) {  // (a missing recipe folder is reported when a run needs it)
    }
    if (!parse(app, args, out)) return kOk;
    // Launched by torchrun, mpirun, srun or scripts/launch: one of N cooperating processes.
    const WorldInfo world = world_from_environment();
    if (!(c.dist_timeout > 0)) throw UsageError("--dist-timeout must be positive");
    set_threads(c.threads, world.local_world_size);
    if (world.distributed() && (c.run.device == "auto" || c.run.device == "cuda") && torch::cuda::is_available())
      c.run.device = "cuda:" + std::to_string(world.local_rank % static_cast<int>(torch::cuda::device_count()));
    const bool resume = !c.resume.empty();
    TrainOptions options;
    std::vector<Recipe> stages;
    if (resume) {
      std::vector<std::string> run_flags_given;
      for (const char* flag : {"--device", "--precision", "--channels-last", "--cuda-graph", "--deterministic",
                               "--checkpoint-every", "--size", "--dry-run"})
        if (app.count(flag) > 0) run_flags_given.push_back(flag);
      read_run(c, fs::path(c.resume) / "run.json", run_flags_given, options, stages);
    } else {
      plan_run(c, world.distributed(), options, stages);
      if (c.dry_run) return dry_run(c, options, stages, out);
      if (c.out.empty()) throw UsageError("--out RUN is required (or --resume RUN)");
      if (c.data.empty()) throw UsageError("--data DIR is required");
    }
    return run(c, args, world, options, stages, resume, out, err);
  });
}

}  // namespace seg::tools
