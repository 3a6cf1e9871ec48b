// Data-parallel seg-train (c10d, Gloo on loopback) with the real binaries: two processes with
// half a batch each end with the weights of one process with the whole batch; a dead rank
// stops the others with a clear error instead of a hang; --resume needs the same world size.
#include <seg/dataset.h>
#include <seg/distributed.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "child_process.h"
#include "fixtures.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::testing::contains;
using seg::testing::ScratchDir;
using seg::testing::spawn;
using seg::testing::text_of;
using seg::testing::wait_exit;

namespace {

const fs::path kBin = SEG_BINARY_DIR;
const fs::path kLaunch = fs::path(SEG_SOURCE_DIR) / "scripts" / "launch";

// Largest absolute difference between two model files' parameters.
double max_weight_difference(const fs::path& a, const fs::path& b) {
  const auto ma = seg::load_model(a), mb = seg::load_model(b);
  const auto pa = ma.net->named_parameters(true), pb = mb.net->named_parameters(true);
  EXPECT_EQ(pa.size(), pb.size());
  double worst = 0;
  for (const auto& item : pa) worst = std::max(worst, (item.value() - pb[item.key()]).abs().max().item<double>());
  return worst;
}

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!seg::distributed_available()) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
    if (!fs::exists(kBin / "seg-train")) GTEST_SKIP() << "build seg-train first";
    torch::manual_seed(5);
    auto data = seg::testing::random_dataset("tiny", 10, 48, 48, 3, 8);
    data.labels = (data.images.to(torch::kInt) / 86).to(torch::kByte);  // something to learn
    seg::save_tensor_pack(data, tmp_ / "pack.pth");
  }

  // Augmentation and validation stay on: both must be shared out consistently.
  std::vector<std::string> train_args(const fs::path& run_dir, int batch, int epochs = 2, int timeout_s = 60) const {
    return {"--data", (tmp_ / "pack.pth").string(), "--model", "fcn", "--epochs", std::to_string(epochs),
            "--batch", std::to_string(batch), "--seed", "3", "--weights", "none", "--threads", "1",
            "--val-every", "1", "--augment-intensity", "0.2", "--augment-zoom", "0.3", "--augment-texture", "0.5",
            "--augment-processing", "0.5", "--augment-opacity", "0.5", "--augment-devices", "0.5", "--augment-rotation", "10",
            "--dist-timeout", std::to_string(timeout_s), "--out", run_dir.string()};
  }

  // RANK/WORLD_SIZE/... for rank `rank` of `world` meeting at `port`.
  static std::vector<std::string> rank_env(int rank, int world, int port) {
    return {"RANK=" + std::to_string(rank), "WORLD_SIZE=" + std::to_string(world), "LOCAL_RANK=" + std::to_string(rank),
            "LOCAL_WORLD_SIZE=" + std::to_string(world), "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)};
  }

  ScratchDir tmp_{"seg-distributed"};
};

}  // namespace

TEST_F(Distributed, TwoProcessesWithHalfABatchEqualOneWithTheWholeBatch) {
  ASSERT_EQ(seg::testing::run_process(kBin / "seg-train", train_args(tmp_ / "one", 4), tmp_ / "one.log"), 0)
      << text_of(tmp_ / "one.log");
  // Through the launcher, as a user would: both ranks get the same --out; rank 0 writes.
  const auto port = std::to_string(seg::testing::free_port());
  std::vector<std::string> launch_args{"-n", "2", "--master", "127.0.0.1:" + port, "--", (kBin / "seg-train").string()};
  for (const auto& a : train_args(tmp_ / "two", 2)) launch_args.push_back(a);
  ASSERT_EQ(seg::testing::run_process(kLaunch, launch_args, tmp_ / "two.log"), 0) << text_of(tmp_ / "two.log");
  EXPECT_TRUE(contains(text_of(tmp_ / "two.log"), "distributed: 2 processes")) << text_of(tmp_ / "two.log");

  // 2 epochs of 2 steps of Adam: the same weights up to float rounding (the mean over 4 cases
  // against the mean of two means over 2), which Adam's normalised steps amplify for
  // parameters with near-zero gradients: measured 4e-4 at most.
  const double two_vs_one = max_weight_difference(tmp_ / "one" / "model.pth", tmp_ / "two" / "model.pth");
  EXPECT_LT(two_vs_one, 2e-3);
  // Only rank 0 wrote: exactly one run's files, no temporaries, one log line per epoch.
  EXPECT_EQ(seg::testing::list_files(tmp_ / "two"),
            (std::vector<std::string>{"checkpoint.pt", "log.csv", "loss.png", "model.pth", "run.json"}));
  const auto log_one = text_of(tmp_ / "one" / "log.csv"), log_two = text_of(tmp_ / "two" / "log.csv");
  EXPECT_EQ(std::count(log_two.begin(), log_two.end(), '\n'), 3) << log_two;
  // The validation Dice (2 test cases, one per rank, summed over the ranks) matches.
  auto last_mean_dice = [](const std::string& csv) { return std::stod(csv.substr(csv.rfind(',') + 1)); };
  EXPECT_NEAR(last_mean_dice(log_one), last_mean_dice(log_two), 1e-3) << log_one << log_two;
  // What a wrong shard or a missing all-reduce gives, for scale: one process with batch 2
  // (measured 1.2e-2 from "one") must be far further off than the two ranks are.
  ASSERT_EQ(seg::testing::run_process(kBin / "seg-train", train_args(tmp_ / "half", 2), tmp_ / "half.log"), 0);
  EXPECT_LT(two_vs_one * 10, max_weight_difference(tmp_ / "one" / "model.pth", tmp_ / "half" / "model.pth"));
}

TEST_F(Distributed, ResumeNeedsTheSameNumberOfProcesses) {
  const int port = seg::testing::free_port();
  const auto run_dir = tmp_ / "run";
  const pid_t r0 = spawn(kBin / "seg-train", train_args(run_dir, 2), tmp_ / "r0.log", rank_env(0, 2, port));
  const pid_t r1 = spawn(kBin / "seg-train", train_args(run_dir, 2), tmp_ / "r1.log", rank_env(1, 2, port));
  ASSERT_EQ(wait_exit(r0), 0) << text_of(tmp_ / "r0.log");
  ASSERT_EQ(wait_exit(r1), 0) << text_of(tmp_ / "r1.log");
  EXPECT_EQ(text_of(tmp_ / "r1.log"), "") << "only rank 0 reports";

  // One process cannot take over a two-process run: usage error, the run untouched.
  const auto before = text_of(run_dir / "log.csv");
  EXPECT_EQ(seg::testing::run_process(kBin / "seg-train", {"--resume", run_dir.string(), "--epochs", "3", "--threads", "1"},
                                      tmp_ / "one.log"),
            2);
  EXPECT_TRUE(contains(text_of(tmp_ / "one.log"), "trained by 2 processes")) << text_of(tmp_ / "one.log");
  EXPECT_EQ(text_of(run_dir / "log.csv"), before);

  // Two processes extend it.
  const int port2 = seg::testing::free_port();
  const std::vector<std::string> resume{"--resume", run_dir.string(), "--epochs", "3", "--threads", "1"};
  const pid_t s0 = spawn(kBin / "seg-train", resume, tmp_ / "s0.log", rank_env(0, 2, port2));
  const pid_t s1 = spawn(kBin / "seg-train", resume, tmp_ / "s1.log", rank_env(1, 2, port2));
  ASSERT_EQ(wait_exit(s0), 0) << text_of(tmp_ / "s0.log");
  ASSERT_EQ(wait_exit(s1), 0) << text_of(tmp_ / "s1.log");
  EXPECT_TRUE(contains(text_of(tmp_ / "s0.log"), "resuming at epoch 3")) << text_of(tmp_ / "s0.log");
  EXPECT_TRUE(contains(text_of(run_dir / "log.csv"), "\n3,")) << text_of(run_dir / "log.csv");
}

TEST_F(Distributed, ADeadRankStopsTheOthersWithAClearError) {
  const int port = seg::testing::free_port();
  const auto run_dir = tmp_ / "run";
  const auto args = train_args(run_dir, 2, 10000);
  const pid_t r0 = spawn(kBin / "seg-train", args, tmp_ / "r0.log", rank_env(0, 2, port));
  const pid_t r1 = spawn(kBin / "seg-train", args, tmp_ / "r1.log", rank_env(1, 2, port));
  const auto start = std::chrono::steady_clock::now();
  while (!contains(text_of(tmp_ / "r0.log"), "epoch 1:") && std::chrono::steady_clock::now() - start < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(contains(text_of(tmp_ / "r0.log"), "epoch 1:")) << text_of(tmp_ / "r0.log");
  ::kill(r1, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(wait_exit(r1), 128 + SIGKILL);
  // A closed connection is noticed at once; the 60 s exchange timeout bounds the worst case.
  EXPECT_EQ(wait_exit(r0), 1) << text_of(tmp_ / "r0.log");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count(), 65.0);
  const auto log = text_of(tmp_ / "r0.log");
  EXPECT_TRUE(contains(log, "seg-train: error: rank 0 of 2: lost contact with the other training processes")) << log;
  // What rank 0 had written stays usable: its last checkpoint resumes (with two processes).
  EXPECT_TRUE(fs::exists(run_dir / "checkpoint.pt"));
}

TEST_F(Distributed, ARankThatNeverComesEndsTheRendezvousInBoundedTime) {
  const auto start = std::chrono::steady_clock::now();
  const auto args = train_args(tmp_ / "run", 2, 2, /*timeout_s=*/2);
  EXPECT_EQ(seg::testing::run_process(kBin / "seg-train", args, tmp_ / "r0.log", rank_env(0, 2, seg::testing::free_port())), 1);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30.0);
  EXPECT_TRUE(contains(text_of(tmp_ / "r0.log"), "could not join the other training processes")) << text_of(tmp_ / "r0.log");
  EXPECT_FALSE(fs::exists(tmp_ / "run")) << "nothing written";
}

// The initial-weight broadcast writes into the parameters themselves: leaves that require grad,
// in NHWC after --channels-last. An in-place write that autograd sees fails there (it did on
// CUDA, where Gloo copies the result back, and for NHWC weights, which take a contiguous copy).
TEST(Communicator, BroadcastsIntoParametersOfAnyMemoryFormat) {
  if (!seg::distributed_available()) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  seg::WorldInfo world;
  world.master_port = seg::testing::free_port();
  seg::Communicator comm(world, std::chrono::seconds(30));
  torch::manual_seed(1);
  auto nhwc = torch::randn({4, 3, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_();
  auto plain = torch::randn({4}).requires_grad_();
  const auto nhwc_before = nhwc.detach().clone(), plain_before = plain.detach().clone();
  comm.broadcast({nhwc, plain});
  EXPECT_TRUE(torch::equal(nhwc.detach(), nhwc_before));
  EXPECT_TRUE(torch::equal(plain.detach(), plain_before));
  EXPECT_TRUE(nhwc.requires_grad() && nhwc.is_leaf());
  EXPECT_TRUE(nhwc.is_contiguous(torch::MemoryFormat::ChannelsLast));
}

TEST(SegmentShards, ShardsSplitTheInputsWithoutOverlapOrGap) {
  const auto model = fs::path(SEG_SOURCE_DIR) / "share" / "models" / "jsrt-fast.pth";
  ASSERT_TRUE(fs::exists(model));
  ScratchDir tmp("seg-shard");
  torch::manual_seed(2);
  seg::save_tensor_pack(seg::testing::random_dataset("seven", 7, 40, 40, 6, 2), tmp / "pack.pth");  // test: c..g
  std::vector<std::string> all;
  for (int k = 0; k < 3; ++k) {
    const auto out = tmp / ("shard" + std::to_string(k));
    auto r = seg::testing::run_process(kBin / "seg-segment",
                                       {"--model", model.string(), "--data", (tmp / "pack.pth").string(), "--threads", "1",
                                        "--shard", std::to_string(k) + "/3", "-o", out.string()},
                                       tmp / "log");
    ASSERT_EQ(r, 0) << text_of(tmp / "log");
    const auto files = seg::testing::list_files(out);
    all.insert(all.end(), files.begin(), files.end());
  }
  // Every N-th from the K-th: 0/3 -> c, f; 1/3 -> d, g; 2/3 -> e.
  EXPECT_EQ(all, (std::vector<std::string>{"c.png", "f.png", "d.png", "g.png", "e.png"}));
  for (const char* bad : {"3/3", "1", "a/2", "1/0", "-1/2"}) {
    EXPECT_EQ(seg::testing::run_process(kBin / "seg-segment",
                                        {"--model", model.string(), "--data", (tmp / "pack.pth").string(), "--shard", bad,
                                         "-o", (tmp / "bad").string()},
                                        tmp / "bad.log"),
              2)
        << bad;
    EXPECT_TRUE(contains(text_of(tmp / "bad.log"), "--shard")) << text_of(tmp / "bad.log");
    EXPECT_FALSE(fs::exists(tmp / "bad"));
  }
}
