#include <seg/error.h>
#include <seg/fs.h>
#include <seg/torch_archive.h>

#include "training_parts.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <iomanip>
#include <sstream>

namespace seg {
namespace fs = std::filesystem;
using nlohmann::json;

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

TrainOptions read_run_options(const fs::path& run_dir) {
  auto archive = open_checkpoint(run_dir / "checkpoint.pt");
  return train_options_from_json(read_checkpoint_meta(archive).options_json, (run_dir / "checkpoint.pt").string());
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

}  // namespace seg
