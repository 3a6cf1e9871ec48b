// Staged recipes: each stage a training run of its own, started from the model of the one before.
#include <seg/fs.h>
#include <seg/train.h>

#include "training_parts.h"

#include <torch/torch.h>

namespace seg {
namespace fs = std::filesystem;

fs::path stage_folder(const fs::path& run_dir, size_t stage) { return run_dir / ("stage-" + std::to_string(stage)); }

namespace {
// Whether the stage in `dir` ran all its epochs (its checkpoint says so and its model is there).
bool finished(const fs::path& dir, int64_t epochs) {
  if (!fs::exists(dir / "checkpoint.pt") || !fs::exists(dir / "model.pth")) return false;
  auto archive = open_checkpoint(dir / "checkpoint.pt");
  return read_checkpoint_meta(archive).epoch >= epochs;
}
}  // namespace

TrainResult train_stages(const Dataset& data, const std::vector<Recipe>& stages, const TrainOptions& options,
                         const fs::path& run_dir, TrainObserver* observer, bool resume, Communicator* comm) {
  if (stages.empty()) throw Error(run_dir.string(), "a recipe without stages has nothing to train");
  const bool writer = !comm || comm->rank() == 0;
  TrainResult result;
  for (size_t k = 1; k <= stages.size(); ++k) {
    const fs::path dir = stage_folder(run_dir, k);
    TrainOptions stage = options;
    stage.recipe = stages[k - 1];
    if (k > 1) stage.recipe.init = (stage_folder(run_dir, k - 1) / "model.pth").string();
    const bool started = resume && fs::exists(dir / "checkpoint.pt");
    if (started && finished(dir, stage.recipe.epochs)) continue;
    if (observer) observer->on_stage(static_cast<int64_t>(k), static_cast<int64_t>(stages.size()), dir);
    if (writer) ensure_writable_dir(dir);
    result = train_network(data, stage, dir, observer, started, comm);
    if (comm) {  // the next stage starts from this one's model: every rank waits until rank 0 has written it
      auto arrived = torch::zeros({1});
      comm->all_reduce_sum(arrived);
    }
  }
  const fs::path last = stage_folder(run_dir, stages.size()) / "model.pth";
  if (result.history.empty()) result.model = load_model(last);  // every stage had finished before
  if (writer) write_file_atomically(run_dir / "model.pth", read_file(last));
  return result;
}

}  // namespace seg
