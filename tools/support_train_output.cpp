#include "support_train_output.h"

#include "common.h"

#include <seg/postprocess.h>
#include <torch/torch.h>

#if SEG_WITH_IMAGE_IO
#include <seg/viz/overlay.h>
#endif

#include <nlohmann/json.hpp>

#include <iomanip>
#include <sstream>

namespace seg::tools {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
// "1h05m", "3m07s", "42s".
std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else if (s >= 60) out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else out << s << "s";
  return out.str();
}

}  // namespace

void ConsoleObserver::on_stage(int64_t stage, int64_t stages, const fs::path& dir) {
  out_ << "stage " << stage << " of " << stages << ": " << dir.string() << "\n";
  run_dir_ = dir;
}

void ConsoleObserver::on_start(const RunStart& s) {
  out_ << "training on " << s.device << " (" << torch::get_num_threads() << " threads): " << s.trainable_parameters
       << " trainable parameters, " << s.train_cases << " training cases, " << s.val_cases << " validation cases ("
       << s.validation << ")" << (s.first_epoch > 1 ? ", resuming at epoch " + std::to_string(s.first_epoch) : "") << "\n";
  if (!s.validation_note.empty()) out_ << "note: " << s.validation_note << "\n";
  if (cuda_graph_ && s.device.rfind("cuda", 0) != 0)
    out_ << "--cuda-graph: no CUDA device, so each step runs eagerly (the same arithmetic, not recorded)\n";
}

void ConsoleObserver::on_step(const StepProgress& p) {
  std::ostringstream line;
  line << std::fixed << "\repoch " << p.epoch << "/" << p.epochs << "  step " << p.step << "/" << p.steps << "  loss "
       << std::setprecision(4) << p.loss << "  " << std::setprecision(1) << p.images_per_second << " img/s  "
       << duration_text(p.seconds_left) << " left   ";
  out_ << line.str() << std::flush;
}

void ConsoleObserver::on_epoch(const EpochLog& r, const std::vector<EpochLog>& history) {
  if (terminal_) out_ << "\r\033[K";
  out_ << std::fixed << "epoch " << r.epoch << ": loss " << std::setprecision(4) << r.loss << " (" << std::setprecision(1)
       << r.seconds << " s)";
  if (!r.val_dice.empty()) {
    out_ << "  Dice";
    for (size_t k = 0; k < r.val_dice.size(); ++k)
      out_ << " " << classes_.entries[k + 1].first << " " << std::setprecision(3) << r.val_dice[k];
    out_ << "  mean " << std::setprecision(4) << r.mean_dice();
  }
  out_ << "\n" << std::flush;
#if SEG_WITH_IMAGE_IO
  viz::Series loss{"training loss", {}, {}}, dice{"validation mean Dice", {}, {}};
  for (const auto& e : history) {
    loss.x.push_back(static_cast<double>(e.epoch));
    loss.y.push_back(e.loss);
    if (!e.val_dice.empty()) dice.x.push_back(static_cast<double>(e.epoch)), dice.y.push_back(e.mean_dice());
  }
  std::vector<viz::Series> series{loss};
  if (!dice.x.empty()) series.push_back(dice);
  viz::write_png(run_dir_ / "loss.png", viz::line_plot(series, "seg-train: " + run_dir_.filename().string(), "epoch", "loss / Dice"));
#else
  (void)history;
#endif
}

void report_postprocessing(std::ostream& out, const ModelInfo& info) {
  const auto provenance = json::parse(info.provenance_json, nullptr, false);
  if (provenance.is_discarded()) return;
  if (provenance.value("postprocessing_chosen_by", "") == "init") {
    out << "no validation cases: the start model's choices are kept: seg-segment will run "
        << (info.postprocessing.empty() ? "no post-processing" : join(info.postprocessing, ", ")) << ", "
        << (info.framing ? "and reframe films framed unlike the training films" : "in one pass") << "\n";
    return;
  }
  if (!provenance.contains("postprocessing_val_mean_dice")) return;
  const auto& scores = provenance["postprocessing_val_mean_dice"];
  out << "post-processing on the validation cases (mean Dice):";
  for (const auto& candidate : postprocessing_candidates()) {
    const auto name = postprocessing_candidate_name(candidate);
    if (scores.contains(name) && scores[name].is_number())
      out << " " << name << " " << std::fixed << std::setprecision(5) << scores[name].get<double>();
  }
  out << "\nseg-segment will run: " << (info.postprocessing.empty() ? "no post-processing" : join(info.postprocessing, ", "))
      << "\n";
  if (!provenance.contains("reframing_val_mean_dice")) return;
  const auto& reframing = provenance["reframing_val_mean_dice"];
  out << "reframing on the validation cases (mean Dice): one pass " << std::fixed << std::setprecision(5)
      << reframing.value("one pass", 0.0) << ", reframed " << reframing.value("reframed", 0.0) << ": "
      << (info.framing ? "seg-segment will reframe films framed unlike the training films" : "not kept, one pass")
      << "\n";
}

}  // namespace seg::tools
