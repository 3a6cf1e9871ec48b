// A model file proves its integrity: every record's CRC-32 (the archive check), the SHA-256 of
// its weights (metadata "weights_sha256"), finite weights. Each damage is refused by
// load_model with one line naming the file; a file from before the digest still loads.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/torch_archive.h>
#include <seg/train.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <limits>

#include "small_model.h"
#include "fixtures.h"
#include "python_support.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::testing::small_model;
using seg::testing::contains;
using seg::testing::ScratchDir;

namespace {

uint32_t u16_at(const std::string& b, size_t at) {
  return static_cast<uint8_t>(b[at]) | static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8;
}
uint32_t u32_at(const std::string& b, size_t at) { return u16_at(b, at) | u16_at(b, at + 2) << 16; }

// Where a record's data lies in an archive (from its directory entry and local header).
struct Record {
  std::string name;
  size_t data = 0, size = 0;
};

std::vector<Record> records_of(const std::string& bytes) {
  std::vector<Record> records;
  for (size_t at = bytes.find(std::string("PK\x01\x02", 4)); at != std::string::npos;
       at = bytes.find(std::string("PK\x01\x02", 4), at + 4)) {
    const size_t local = u32_at(bytes, at + 42);
    records.push_back({bytes.substr(at + 46, u16_at(bytes, at + 28)),
                       local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28), u32_at(bytes, at + 20)});
  }
  return records;
}

// The largest record whose name contains `part` ("/data/N" records hold tensors).
Record largest_record(const std::string& bytes, const std::string& part) {
  Record best;
  for (const auto& r : records_of(bytes))
    if (contains(r.name, part) && r.size > best.size) best = r;
  return best;
}

// The file's pickle, re-saved after `change` edits its dict: a file that is sound as an
// archive but says something else.
void rewrite_model(const fs::path& path, const std::function<void(c10::impl::GenericDict&)>& change) {
  const std::string bytes = seg::read_file(path);
  auto dict = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  change(dict);
  const auto out = torch::pickle_save(c10::IValue(dict));
  seg::write_file_atomically(path, std::string(out.begin(), out.end()));
}

void edit_metadata(c10::impl::GenericDict& dict, const std::function<void(nlohmann::json&)>& change) {
  auto metadata = nlohmann::json::parse(dict.at("metadata").toStringRef());
  change(metadata);
  dict.insert_or_assign("metadata", metadata.dump(1));
}

// The model file at `path` with its metadata changed, and its digest still that of its weights.
void edit_model_metadata(const fs::path& path, const std::function<void(nlohmann::json&)>& change) {
  rewrite_model(path, [&](auto& dict) { edit_metadata(dict, change); });
}

}  // namespace

TEST(ModelIntegrity, SaveRecordsTheWeightsDigestAndLoadVerifiesIt) {
  ScratchDir tmp;
  seg::save_model(small_model(3), tmp / "model.pth");
  const std::string bytes = seg::read_file(tmp / "model.pth");
  const auto dict = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  const auto metadata = nlohmann::json::parse(dict.at("metadata").toStringRef());
  ASSERT_TRUE(metadata.contains("weights_sha256"));
  const std::string digest = metadata["weights_sha256"];
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(digest.size(), 64u);
  EXPECT_EQ(seg::load_model(tmp / "model.pth").weights_sha256, digest);
  // The digest is of the weights as stored: float16 ones have their own.
  auto half = small_model(3);
  half.stored_as = seg::WeightPrecision::float16;
  seg::save_model(half, tmp / "half.pth");
  const auto loaded_half = seg::load_model(tmp / "half.pth");
  EXPECT_EQ(loaded_half.weights_sha256.size(), 64u);
  EXPECT_NE(loaded_half.weights_sha256, digest);
}

// Files written before models carried a digest load as before; the CRC-32 of their records
// still guards them.
TEST(ModelIntegrity, AFileWithoutADigestStillLoadsAndItsRecordsAreStillChecked) {
  ScratchDir tmp;
  seg::save_model(small_model(3), tmp / "old.pth");
  rewrite_model(tmp / "old.pth", [](auto& dict) { edit_metadata(dict, [](auto& m) { m.erase("weights_sha256"); }); });
  const auto old = seg::load_model(tmp / "old.pth");
  EXPECT_EQ(old.weights_sha256, "");
  EXPECT_TRUE(torch::equal(old.net->named_parameters()["4.weight"], small_model(3).net->named_parameters()["4.weight"]));
  std::string bytes = seg::read_file(tmp / "old.pth");
  const auto weights = largest_record(bytes, "/data/");
  bytes[weights.data + weights.size / 2] ^= 0x10;
  seg::write_file_atomically(tmp / "old.pth", bytes);
  EXPECT_TRUE(contains(seg::testing::error_of([&] { seg::load_model(tmp / "old.pth"); }), "fails its CRC-32 check"));
}

// One named way of damaging a saved model, and what load_model must say about it.
struct Damage {
  std::string name;
  std::function<void(const fs::path&)> apply;
  std::string says;
};
void PrintTo(const Damage& damage, std::ostream* os) { *os << damage.name; }

class DamagedModel : public ::testing::TestWithParam<Damage> {};

TEST_P(DamagedModel, IsRefusedWithOneLineNamingTheFile) {
  ScratchDir tmp;
  const fs::path path = tmp / "model.pth";
  seg::save_model(small_model(3), path);
  GetParam().apply(path);
  const std::string error = seg::testing::error_of([&] { seg::load_model(path); });
  EXPECT_EQ(error.rfind(path.string() + ": ", 0), 0u) << error;
  EXPECT_TRUE(contains(error, GetParam().says)) << error;
  EXPECT_FALSE(contains(error, "\n")) << error;
  // Still recognised as a model, so that the tools route it to load_model and its reason.
  EXPECT_TRUE(seg::is_model_file(path));
}

void flip_bit(const fs::path& path, size_t at, char bit) {
  std::string bytes = seg::read_file(path);
  bytes[at] ^= bit;
  seg::write_file_atomically(path, bytes);
}

void set_weight(const fs::path& path, float value) {
  rewrite_model(path, [&](auto& dict) {
    auto state = dict.at("state_dict").toGenericDict();
    auto bias = state.at("4.bias").toTensor().clone();
    bias[1] = value;
    state.insert_or_assign("4.bias", bias);
  });
}

INSTANTIATE_TEST_SUITE_P(
    ModelIntegrity, DamagedModel,
    ::testing::Values(
        // A byte in the middle of the largest weight record: without the CRC-32 it loads, and
        // segments differently.
        Damage{"weight_byte_flipped",
               [](const fs::path& p) {
                 const auto weights = largest_record(seg::read_file(p), "/data/");
                 flip_bit(p, weights.data + weights.size / 2, '\x40');
               },
               "model file is damaged: record archive/data/"},
        // One bit of the metadata ("epochs_done": 7 becomes 6): still valid JSON.
        Damage{"metadata_bit_flipped",
               [](const fs::path& p) { flip_bit(p, seg::read_file(p).find("\"epochs_done\": 7") + 15, '\x01'); },
               "archive/data.pkl fails its CRC-32 check; download or copy it again"},
        // Sound archives that say something else: a digest of other weights, and weights
        // changed (as in Python) with the digest of the old ones kept.
        Damage{"digest_of_other_weights",
               [](const fs::path& p) {
                 rewrite_model(p, [](auto& dict) {
                   edit_metadata(dict, [](auto& m) { m["weights_sha256"] = std::string(64, 'a'); });
                 });
               },
               "weights do not match the SHA-256 in its metadata"},
        Damage{"weights_changed_after_saving", [](const fs::path& p) { set_weight(p, 0.5f); },
               "weights do not match the SHA-256 in its metadata"},
        Damage{"digest_not_hexadecimal",
               [](const fs::path& p) {
                 rewrite_model(p, [](auto& dict) { edit_metadata(dict, [](auto& m) { m["weights_sha256"] = 7; }); });
               },
               "weights_sha256 is not 64 hexadecimal digits"},
        // Non-finite weights, with a digest that matches them (saved so by a diverged run).
        Damage{"nan_weight",
               [](const fs::path& p) {
                 auto m = seg::load_model(p);
                 torch::NoGradGuard no_grad;
                 m.net->named_parameters()["4.bias"][1].fill_(std::numeric_limits<float>::quiet_NaN());
                 seg::save_model(m, p);
               },
               "weights \"4.bias\" hold NaN or infinite values"},
        Damage{"inf_weight",
               [](const fs::path& p) {
                 auto m = seg::load_model(p);
                 torch::NoGradGuard no_grad;
                 m.net->named_parameters()["2.0.weight"][0][0][0][0].fill_(-std::numeric_limits<float>::infinity());
                 seg::save_model(m, p);
               },
               "weights \"2.0.weight\" hold NaN or infinite values"},
        // An edited class table would relabel every structure: out of order, out of range,
        // wrapped past 32 bits, or not a whole number.
        Damage{"classes_out_of_order", [](const fs::path& p) { edit_model_metadata(p, [](auto& m) { std::swap(m["classes"][1], m["classes"][2]); }); },
               "out of ascending value order"},
        Damage{"class_value_300", [](const fs::path& p) { edit_model_metadata(p, [](auto& m) { m["classes"][2]["value"] = 300; }); },
               "class value outside 0..255 (300)"},
        Damage{"class_value_past_32_bits",
               [](const fs::path& p) { edit_model_metadata(p, [](auto& m) { m["classes"][2]["value"] = (int64_t{1} << 32) + 2; }); },
               "class value outside 0..255"},
        Damage{"class_value_not_whole", [](const fs::path& p) { edit_model_metadata(p, [](auto& m) { m["classes"][1]["value"] = 1.5; }); },
               "a class value must be a whole number"},
        Damage{"overlap_past_32_bits",
               [](const fs::path& p) {
                 edit_model_metadata(p, [](auto& m) { m["overlaps"] = {{{"under", (int64_t{1} << 32) + 1}, {"over", 2}}}; });
               },
               "overlap of a class value outside 0..255"},
        // A size no film is segmented at, that would allocate gigabytes first.
        Damage{"input_size_huge", [](const fs::path& p) { edit_model_metadata(p, [](auto& m) { m["input_size"] = {100000, 100000}; }); },
               "no valid input_size"}),
    [](const auto& info) { return info.param.name; });

// The first non-finite tensor in the network's order is the one named.
TEST(ModelIntegrity, NonFiniteWeightsAreRefusedWithoutADigestToo) {
  ScratchDir tmp;
  auto m = small_model(3);
  {
    torch::NoGradGuard no_grad;
    m.net->named_parameters()["4.bias"][0].fill_(std::numeric_limits<float>::infinity());
    m.net->named_parameters()["1.0.bias"][0].fill_(std::numeric_limits<float>::quiet_NaN());
  }
  seg::save_model(m, tmp / "model.pth");
  rewrite_model(tmp / "model.pth", [](auto& dict) { edit_metadata(dict, [](auto& j) { j.erase("weights_sha256"); }); });
  const std::string error = seg::testing::error_of([&] { seg::load_model(tmp / "model.pth"); });
  EXPECT_TRUE(contains(error, "weights \"1.0.bias\" hold NaN")) << error;
  auto net = seg::make_network({"fcn", 1, 3});
  const std::string state_error = seg::testing::error_of([&] { seg::load_state_dict(*net, tmp / "model.pth"); });
  EXPECT_TRUE(contains(state_error, "weights \"1.0.bias\" hold NaN")) << state_error;
}

// docs/formats.md says how to compute the digest; Python following it gets ours.
TEST(ModelIntegrity, PythonComputesTheSameDigestFromTheDocumentedRecipe) {
  SEG_REQUIRE_PYTHON("torch");
  ScratchDir tmp;
  auto m = small_model(3);
  m.stored_as = seg::WeightPrecision::float16;
  seg::save_model(m, tmp / "model.pth");
  const std::string script =
      "import hashlib, json, struct, torch\n"
      "m = torch.load(r'" + (tmp / "model.pth").string() + "')\n"
      "h = hashlib.sha256()\n"
      "def field(b):\n"
      "    h.update(struct.pack('<Q', len(b))); h.update(b)\n"
      "for name in sorted(m['state_dict'], key=lambda n: n.encode()):\n"
      "    t = m['state_dict'][name].detach().cpu().contiguous()\n"
      "    field(name.encode())\n"
      "    field(str(t.dtype).removeprefix('torch.').encode())\n"
      "    field(struct.pack(f'<{t.dim()}q', *t.shape))\n"
      "    field(t.reshape(-1).view(torch.uint8).numpy().tobytes())\n"
      "assert h.hexdigest() == json.loads(m['metadata'])['weights_sha256'], h.hexdigest()\n";
  EXPECT_TRUE(seg::testing::run_python(script, tmp.path())) << seg::read_file(tmp / "python.log");
}

// fuzz_model_file's finding: the pickle gives "2.0.weight" the storage key of a smaller
// record. LibTorch sizes the storage as the pickle claims, so the tensor passed the storage
// check and reading it read past its record. (Saved with its CRCs mended, as one who crafts
// such a file would.)
TEST(ModelIntegrity, ATensorWhoseStorageNamesASmallerRecordIsRefused) {
  const auto path = fs::path(SEG_SOURCE_DIR) / "fuzz" / "regressions" / "fuzz_model_file" / "storage-key-names-a-smaller-record";
  ASSERT_EQ(seg::torch_archive_problem(seg::read_file(path)), "");
  const std::string error = seg::testing::error_of([&] { seg::load_model(path); });
  EXPECT_TRUE(contains(error, "weights \"2.0.weight\" has sizes and strides that reach past its 6912 bytes")) << error;
}

// seg-train's checkpoint goes through the same archive check before LibTorch reads it.
TEST(ModelIntegrity, ADamagedCheckpointIsRefusedOnResume) {
  torch::set_num_threads(1);
  torch::manual_seed(2);
  ScratchDir run;
  seg::TrainOptions options;
  options.recipe.network = "fcn";
  options.recipe.epochs = 1;
  options.recipe.batch = 2;
  options.recipe.seed = 7;
  options.recipe.validation.split = "test";
  options.recipe.validation.every = 1;
  options.run.device = "cpu";
  seg::train_network(seg::testing::random_dataset("d", 5, 16, 16, 3, 4), options, run.path());
  std::string bytes = seg::read_file(run / "checkpoint.pt");
  EXPECT_EQ(seg::torch_archive_problem(bytes), "");  // TorchScript's deflated code records included
  EXPECT_EQ(seg::read_run_options(run.path()).recipe.epochs, 1);
  const auto weights = largest_record(bytes, "/data/");
  ASSERT_GT(weights.size, 0u);
  bytes[weights.data + weights.size / 2] ^= 0x04;
  seg::write_file_atomically(run / "checkpoint.pt", bytes);
  const std::string error = seg::testing::error_of([&] { seg::read_run_options(run.path()); });
  EXPECT_TRUE(contains(error, "checkpoint.pt: checkpoint is damaged: record ")) << error;
  EXPECT_TRUE(contains(error, "fails its CRC-32 check")) << error;
}
