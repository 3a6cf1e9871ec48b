#pragma once
// What seg-train prints: progress on a terminal, a line per epoch, the loss curve, the clean-up.
#include <seg/model_file.h>
#include <seg/train.h>

#include <filesystem>
#include <ostream>

namespace seg::tools {

// Progress on a terminal (one rewritten line), a line per epoch for logs, and loss.png in the
// folder of the run (or stage) in progress.
class ConsoleObserver : public TrainObserver {
 public:
  ConsoleObserver(std::ostream& out, bool terminal, const ClassTable& classes, std::filesystem::path run_dir, bool cuda_graph)
      : out_(out), terminal_(terminal), classes_(classes), run_dir_(std::move(run_dir)), cuda_graph_(cuda_graph) {}
  void on_stage(int64_t stage, int64_t stages, const std::filesystem::path& dir) override;
  void on_start(const RunStart& start) override;
  bool wants_steps() const override { return terminal_; }
  void on_step(const StepProgress& progress) override;
  void on_epoch(const EpochLog& record, const std::vector<EpochLog>& history) override;

 private:
  std::ostream& out_;
  bool terminal_;
  ClassTable classes_;
  std::filesystem::path run_dir_;
  bool cuda_graph_;  // asked for: said so when there is no GPU to record on
};

// The clean-ups scored on the validation cases after the last epoch, and the one kept.
void report_postprocessing(std::ostream& out, const ModelInfo& info);

}  // namespace seg::tools
