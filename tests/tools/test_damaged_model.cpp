// The tool-level contract of model integrity: seg-segment and seg-inspect refuse a damaged
// model (a flipped byte in its weights or metadata, non-finite weights) and a crafted archive
// with exit code 1 and one line naming the file; seg-inspect shows which protection a sound
// model has; seg-convert adds the digest to a model written before it existed.
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <memory>

#include "small_model.h"
#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
using seg::testing::small_model;
using seg::testing::contains;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

namespace {

std::string bytes_of(const at::Tensor& t) {
  const auto c = t.detach().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// Saved models, each damaged in one way, and an image to segment; made once.
class Inputs {
 public:
  Inputs() {
    torch::set_num_threads(1);
    const auto model = small_model(5);
    seg::save_model(model, dir_ / "model.pth");
    const std::string bytes = seg::read_file(dir_ / "model.pth");
    // A byte inside a weight record: found by the weights' own bytes.
    std::string weights = bytes;
    const size_t at = weights.find(bytes_of(model.net->named_parameters()["2.0.weight"]));
    if (at == std::string::npos) throw std::runtime_error("weights not found in the model file");
    weights[at + 100] ^= 0x08;
    seg::write_file_atomically(dir_ / "weight-flipped.pth", weights);
    // One bit of the metadata: "epochs_done": 7 becomes 6, still valid JSON.
    std::string metadata = bytes;
    metadata[metadata.find("\"epochs_done\": 7") + 15] ^= 0x01;
    seg::write_file_atomically(dir_ / "metadata-flipped.pth", metadata);
    auto diverged = small_model(5);
    {
      torch::NoGradGuard no_grad;
      diverged.net->named_parameters()["4.bias"][2].fill_(std::numeric_limits<float>::quiet_NaN());
    }
    seg::save_model(diverged, dir_ / "nan.pth");
    fs::copy_file(fs::path(SEG_SOURCE_DIR) / "fuzz/regressions/fuzz_tensor_pack/miniz-overflow-zip64-directory-offset-wraps-around",
                  dir_ / "crafted.pth");
    seg::io::write_image(dir_ / "chest.png",
                         seg::testing::image_of(torch::randint(0, 256, {32, 32}, torch::kByte), "uint8"));
  }
  fs::path operator/(const std::string& name) const { return dir_ / name; }

 private:
  ScratchDir dir_{"seg-damaged-model"};
};

struct ToolCase {
  std::string name;
  std::string tool;  // "segment" or "inspect"
  std::string file;
  std::string says;
};
void PrintTo(const ToolCase& c, std::ostream* os) { *os << c.name; }

class DamagedModelTool : public ::testing::TestWithParam<ToolCase> {
 protected:
  static void SetUpTestSuite() { inputs_ = std::make_unique<Inputs>(); }
  static void TearDownTestSuite() { inputs_.reset(); }
  static std::unique_ptr<Inputs> inputs_;
};
std::unique_ptr<Inputs> DamagedModelTool::inputs_;

}  // namespace

TEST_P(DamagedModelTool, ExitsWithOneAndOneLineNamingTheFile) {
  const auto& c = GetParam();
  ScratchDir out("seg-damaged-out");
  const std::string file = (*inputs_ / c.file).string();
  const auto r = c.tool == "segment"
                     ? run_tool_in_process(seg::tools::segment, {"--model", file, (*inputs_ / "chest.png").string(), "-o",
                                                                 (out / "seg").string(), "--threads", "1"})
                     : run_tool_in_process(seg::tools::inspect, {file});
  EXPECT_EQ(r.code, 1) << r.err << r.out;
  EXPECT_EQ(r.err.rfind("seg-" + c.tool + ": error: " + file + ": ", 0), 0u) << r.err;
  EXPECT_TRUE(contains(r.err, c.says)) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(seg::testing::list_files(out.path()), std::vector<std::string>{}) << "written despite the error";
}

INSTANTIATE_TEST_SUITE_P(
    ModelIntegrity, DamagedModelTool,
    ::testing::Values(
        ToolCase{"segment_weight_byte_flipped", "segment", "weight-flipped.pth", "fails its CRC-32 check; download or copy it again"},
        ToolCase{"inspect_weight_byte_flipped", "inspect", "weight-flipped.pth", "fails its CRC-32 check; download or copy it again"},
        ToolCase{"segment_metadata_bit_flipped", "segment", "metadata-flipped.pth", "record archive/data.pkl fails its CRC-32 check"},
        ToolCase{"inspect_metadata_bit_flipped", "inspect", "metadata-flipped.pth", "record archive/data.pkl fails its CRC-32 check"},
        ToolCase{"segment_nan_weights", "segment", "nan.pth", "weights \"4.bias\" hold NaN or infinite values"},
        ToolCase{"inspect_nan_weights", "inspect", "nan.pth", "weights \"4.bias\" hold NaN or infinite values"},
        ToolCase{"inspect_zip64_directory_offset_wraps_around", "inspect", "crafted.pth", "ZIP64 end record gives directory offset"}),
    [](const auto& info) { return info.param.name; });

TEST(ModelIntegrityTools, InspectShowsTheProtectionAndConvertAddsTheDigestToAnOlderFile) {
  torch::set_num_threads(1);
  ScratchDir tmp;
  const auto model = small_model(5);
  seg::save_model(model, tmp / "model.pth");
  auto text = run_tool_in_process(seg::tools::inspect, {(tmp / "model.pth").string()});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "integrity: CRC-32 of every record, SHA-256 of the weights (verified)\n")) << text.out;
  auto json = run_tool_in_process(seg::tools::inspect, {(tmp / "model.pth").string(), "--json"});
  ASSERT_EQ(json.code, 0) << json.err;
  const auto report = nlohmann::json::parse(json.out);
  EXPECT_EQ(report["integrity"]["crc32_of_every_record"], "verified");
  EXPECT_EQ(report["integrity"]["weights_sha256"], seg::load_model(tmp / "model.pth").weights_sha256);

  // A file from before the digest: its metadata without "weights_sha256".
  const std::string bytes = seg::read_file(tmp / "model.pth");
  auto dict = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  auto metadata = nlohmann::json::parse(dict.at("metadata").toStringRef());
  metadata.erase("weights_sha256");
  dict.insert_or_assign("metadata", metadata.dump(1));
  const auto old = torch::pickle_save(c10::IValue(dict));
  seg::write_file_atomically(tmp / "old.pth", std::string(old.begin(), old.end()));
  text = run_tool_in_process(seg::tools::inspect, {(tmp / "old.pth").string()});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "integrity: CRC-32 of every record (verified); no SHA-256 of the weights")) << text.out;
  json = run_tool_in_process(seg::tools::inspect, {(tmp / "old.pth").string(), "--json"});
  EXPECT_TRUE(nlohmann::json::parse(json.out)["integrity"]["weights_sha256"].is_null()) << json.out;

  // seg-convert rewrites it with the digest, weights unchanged.
  const auto converted = run_tool_in_process(seg::tools::convert, {(tmp / "old.pth").string(), "-o", (tmp / "new.pth").string()});
  ASSERT_EQ(converted.code, 0) << converted.err;
  const auto before = seg::load_model(tmp / "old.pth"), after = seg::load_model(tmp / "new.pth");
  EXPECT_EQ(after.weights_sha256.size(), 64u);
  for (const auto& item : before.net->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), after.net->named_parameters()[item.key()])) << item.key();
}
