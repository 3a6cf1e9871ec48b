// seg-convert between PyTorch state_dicts and our model files: weights trained in Python
// segment as they do in Python, ours load in Python, and bad weights are refused in one line.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/state_dict.h>
#include <torch/torch.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "notebook_networks_py.h"
#include "python_support.h"
#include "state_dict_fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

using seg::testing::contains;
using seg::testing::list_files;
using seg::testing::ScratchDir;
namespace fs = std::filesystem;

namespace {

auto convert(const seg::tools::Args& args) { return seg::testing::run_tool_in_process(seg::tools::convert, args); }

// Generated films in a data set folder (PNG images, six classes): cases a..e, a..c in train.
// The train images are darker than the test images, so a normalisation over all images would
// differ from the train split's.
fs::path generated_films(const fs::path& dir, int64_t size) {
  torch::manual_seed(11);
  auto data = seg::testing::random_dataset("films", 5, size, size, 6, 3);
  // Smooth blobs rather than noise: what a network sees in a film.
  auto smooth = torch::avg_pool2d(torch::rand({5, 1, size + 8, size + 8}) * 255, 9, 1).squeeze(1);
  data.images = (smooth * torch::tensor({0.6, 0.6, 0.6, 1.0, 1.0}).view({5, 1, 1})).clamp(0, 255).to(torch::kByte);
  seg::io::write_dataset_folder(data, dir);
  return dir;
}

// The notebook's network `python_net` (fullyconv or LightUNet) with seeded weights, saved by
// Python as torch.save(net.state_dict()); and, for each film, the label map Python computes as
// the notebook does: z-normalised with the train split's mean and std, forward, bilinear
// upsampling to the film's size, argmax. Writes WEIGHTS and <case>.raw (uint8) into `dir`.
std::string python_segmentation_script(const std::string& python_net, const fs::path& data_dir,
                                       const std::vector<std::string>& cases, const fs::path& dir) {
  std::string case_list;
  for (const auto& c : cases) case_list += "'" + c + "', ";
  return seg::testing::kNotebookNetworksPython + R"PY(
import json, numpy as np
from PIL import Image
data, out = ')PY" +
         data_dir.string() + "', '" + dir.string() + R"PY('
spec = json.load(open(data + '/dataset.json'))
def image(case):
    return np.asarray(Image.open(data + '/' + spec['images'].replace('{case}', case)), dtype=np.float64)
train = np.stack([image(c) for c in spec['split']['train']])
mean, std = train.mean(), train.std(ddof=1)
torch.manual_seed(7)
net = )PY" +
         python_net + R"PY(
net.eval()
torch.save(net.state_dict(), out + '/weights.pt')
for case in [)PY" +
         case_list + R"PY(]:
    x = torch.from_numpy(((image(case) - mean) / std).astype(np.float32))[None, None]
    with torch.no_grad():
        output = net(x)
        labels = F.interpolate(output, size=x.shape[-2:], mode='bilinear').argmax(1)
    open(out + '/' + case + '.raw', 'wb').write(labels.squeeze().numpy().astype(np.uint8).tobytes())
)PY";
}

// Imports the Python weights with seg-convert, segments the films with seg-segment, and
// returns the smallest fraction of pixels on which a film's label maps agree.
double agreement_with_python(const std::string& network, const std::string& python_net, const fs::path& data_dir,
                             const std::vector<std::string>& cases, const ScratchDir& tmp) {
  EXPECT_TRUE(seg::testing::run_python(python_segmentation_script(python_net, data_dir, cases, tmp.path()), tmp.path()))
      << seg::read_file(tmp / "python.log");
  auto r = convert({(tmp / "weights.pt").string(), "--network", network, "--data", data_dir.string(), "-o",
                    (tmp / "model.pth").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto spec = seg::DatasetSpec::read(data_dir / "dataset.json");
  seg::tools::Args args = {"--model", (tmp / "model.pth").string(), "-o", (tmp / "ours").string(), "--threads", "1"};
  for (const auto& c : cases) args.push_back(spec.image_path(data_dir, c).string());
  r = seg::testing::run_tool_in_process(seg::tools::segment, args);
  EXPECT_EQ(r.code, 0) << r.err;
  double worst = 1.0;
  for (const auto& c : cases) {
    const auto ours = seg::io::read_label_map(tmp / "ours" / (c + ".png")).pixels;
    const std::string raw = seg::read_file(tmp / (c + ".raw"));
    const auto theirs = torch::from_blob(const_cast<char*>(raw.data()), ours.sizes(), torch::kByte).clone();
    // A meaningful comparison: Python's map is not one class nearly everywhere.
    const auto counts = torch::bincount(theirs.flatten().to(torch::kLong), {}, 6);
    EXPECT_LT(counts.max().item<double>(), 0.9 * static_cast<double>(theirs.numel())) << c << ": " << counts;
    worst = std::min(worst, ours.eq(theirs).to(torch::kDouble).mean().item<double>());
  }
  return worst;
}

}  // namespace

TEST(ConvertStateDict, NotebookNetworksTrainedInPythonSegmentAsInPython) {
  SEG_REQUIRE_PYTHON("torch, PIL, numpy");
  torch::set_num_threads(1);
  ScratchDir films;
  const auto data = generated_films(films / "films", 64);
  for (const auto& [network, python_net] :
       std::vector<std::pair<std::string, std::string>>{{"fcn", "fullyconv(6)"},
                                                        {"fcn-wide", "fullyconv(6, (64, 128, 256, 256))"},
                                                        {"light-unet", "LightUNet(6)"}}) {
    SCOPED_TRACE(network);
    ScratchDir tmp;
    EXPECT_GE(agreement_with_python(network, python_net, data, {"a", "d", "e"}, tmp), 0.99);
  }
}

TEST(ConvertStateDict, NotebookNetworksSegmentJsrtFilmsAsInPython) {
  SEG_REQUIRE_PYTHON("torch, PIL, numpy");
  SEG_REQUIRE_JSRT(jsrt);
  torch::set_num_threads(1);
  const auto spec = seg::DatasetSpec::read(jsrt / "dataset.json");
  const auto& test = spec.splits.at("test");
  for (const auto& [network, python_net] :
       std::vector<std::pair<std::string, std::string>>{{"fcn", "fullyconv(6)"}, {"light-unet", "LightUNet(6)"}}) {
    SCOPED_TRACE(network);
    ScratchDir tmp;
    EXPECT_GE(agreement_with_python(network, python_net, jsrt, {test[0], test[1]}, tmp), 0.99);
  }
}

// Our export of an imported model loads in Python with load_state_dict (strict) into the
// notebook's network and gives the logits of the network it came from.
TEST(ConvertStateDict, ExportLoadsInPythonWithTheSameLogits) {
  SEG_REQUIRE_PYTHON("torch");
  torch::set_num_threads(1);
  ScratchDir tmp;
  seg::save_tensor_pack(seg::testing::random_dataset("pack", 3, 32, 32, 6, 2), tmp / "pack.pth");
  const std::string dir = tmp.path().string();
  const std::string nets = "nets = {'fcn': lambda: fullyconv(6), 'light-unet': lambda: LightUNet(6)}\n";
  ASSERT_TRUE(seg::testing::run_python(seg::testing::kNotebookNetworksPython + nets + R"PY(
for name, make in nets.items():
    torch.manual_seed(3)
    torch.save(make().state_dict(), ')PY" + dir +
                                           R"PY(/' + name + '.pt')
)PY",
                                       tmp.path()))
      << seg::read_file(tmp / "python.log");
  for (const std::string network : {"fcn", "light-unet"}) {
    auto r = convert({(tmp / (network + ".pt")).string(), "--network", network, "--data", (tmp / "pack.pth").string(),
                      "-o", (tmp / (network + "-model.pth")).string()});
    ASSERT_EQ(r.code, 0) << r.err;
    r = convert(
        {(tmp / (network + "-model.pth")).string(), "--state-dict", "-o", (tmp / (network + "-back.pt")).string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "named as the course notebook names them")) << r.out;
  }
  ASSERT_TRUE(seg::testing::run_python(seg::testing::kNotebookNetworksPython + nets + R"PY(
dir = ')PY" + dir + R"PY('
with open(dir + '/differences.txt', 'w') as out:
    for name, make in nets.items():
        torch.manual_seed(3)
        original = make().eval()
        torch.manual_seed(99)
        back = make().eval()
        x = torch.randn(2, 1, 32, 32)
        with torch.no_grad():
            before = (original(x) - back(x)).abs().max().item()
            back.load_state_dict(torch.load(dir + '/' + name + '-back.pt'))
            after = (original(x) - back(x)).abs().max().item()
        out.write(f'{name} {before} {after}\n')
)PY",
                                       tmp.path()))
      << seg::read_file(tmp / "python.log");
  std::ifstream in(tmp / "differences.txt");
  std::string network;
  double before = 0, after = 0;
  int networks = 0;
  while (in >> network >> before >> after) {
    SCOPED_TRACE(network);
    EXPECT_GT(before, 1e-3);  // the loaded weights are what changed the logits
    EXPECT_LE(after, 1e-5);
    ++networks;
  }
  EXPECT_EQ(networks, 2);
}

// Weights of our own networks go out and come back unchanged; the model records its import,
// with the normalisation of the data's train split, and seg-inspect says so.
TEST(ConvertStateDict, OwnNetworksRoundTripAndTheImportIsRecorded) {
  ScratchDir tmp;
  torch::manual_seed(5);
  auto data = seg::testing::random_dataset("pack", 4, 32, 32, 3, 2);
  data.images.slice(0, 0, 2).copy_(data.images.slice(0, 0, 2) / 2);  // train darker than test
  seg::save_tensor_pack(data, tmp / "pack.pth");
  seg::Model model;
  model.info.network = {"res-unet", 1, 3};
  model.info.classes = data.classes;
  model.info.input_size = {32, 32};
  model.net = seg::make_network(model.info.network);
  seg::save_model(model, tmp / "model.pth");

  auto r = convert({(tmp / "model.pth").string(), "--state-dict", "-o", (tmp / "weights.pt").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "named as segsuite names them")) << r.out;
  r = convert({(tmp / "weights.pt").string(), "--network", "res-unet", "--data", (tmp / "pack.pth").string(), "-o",
               (tmp / "imported.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto imported = seg::load_model(tmp / "imported.pth");
  for (const auto& item : model.net->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), imported.net->named_parameters()[item.key()])) << item.key();
  const auto train = data.subset("train").images.to(torch::kDouble);
  EXPECT_EQ(imported.info.normalization.mode, "dataset");
  EXPECT_NEAR(imported.info.normalization.mean, train.mean().item<double>(), 1e-9);
  EXPECT_NEAR(imported.info.normalization.std, train.std().item<double>(), 1e-9);
  EXPECT_EQ(imported.info.input_size, (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(imported.info.classes.entries, data.classes.entries);
  const auto provenance = nlohmann::json::parse(imported.info.provenance_json);
  EXPECT_EQ(provenance["imported"]["from"], fs::absolute(tmp / "weights.pt").string());
  EXPECT_EQ(provenance["imported"]["network"], "res-unet");
  EXPECT_EQ(provenance["imported"]["normalization"]["mean"], imported.info.normalization.mean);
  r = seg::testing::run_tool_in_process(seg::tools::inspect, {(tmp / "imported.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(
      r.out, "imported: from the PyTorch state_dict " + fs::absolute(tmp / "weights.pt").string() + " as res-unet"))
      << r.out;

  // Given normalisations are kept as given.
  r = convert({(tmp / "weights.pt").string(), "--network", "res-unet", "--data", (tmp / "pack.pth").string(), "--mean",
               "0.5", "--std", "0.25", "-o", (tmp / "given.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(seg::load_model(tmp / "given.pth").info.normalization.mean, 0.5);
  EXPECT_EQ(seg::load_model(tmp / "given.pth").info.normalization.std, 0.25);
  r = convert({(tmp / "weights.pt").string(), "--network", "res-unet", "--data", (tmp / "pack.pth").string(),
               "--normalize", "image", "-o", (tmp / "image.pth").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(seg::load_model(tmp / "image.pth").info.normalization.mode, "image");
}

TEST(ConvertStateDict, UsageErrorsExitWithTwo) {
  ScratchDir tmp;
  seg::save_tensor_pack(seg::testing::random_dataset("pack", 3, 16, 16, 3, 2), tmp / "pack.pth");
  const std::string weights = (tmp / "w.pt").string(), pack = (tmp / "pack.pth").string(),
                    out = (tmp / "m.pth").string();
  for (const auto& args : std::vector<seg::tools::Args>{
           {weights, "--network", "fcn", "-o", out},                                 // no --data
           {weights, "--network", "unet9", "--data", pack, "-o", out},               // unknown network
           {weights, "--data", pack, "-o", out},                                     // --data alone
           {weights, "--network", "fcn", "--data", pack, "--mean", "3", "-o", out},  // --mean without --std
           {weights, "--network", "fcn", "--data", pack, "--mean", "3", "--std", "0", "-o", out},
           {weights, "--network", "fcn", "--data", pack, "--normalize", "image", "--mean", "1", "--std", "2", "-o",
            out},
           {weights, "--network", "fcn", "--state-dict", "--data", pack, "-o", out},
       }) {
    const auto r = convert(args);
    EXPECT_EQ(r.code, 2) << args[2] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_TRUE(list_files(tmp.path()) == std::vector<std::string>{"pack.pth"});
}

// Bad weights: one line on stderr naming the weights file, exit 1, and no model written.
struct BadWeights {
  std::string name;
  std::function<std::string()> bytes;  // the weights file's content
  std::string expected;                // part of the message
};
void PrintTo(const BadWeights& c, std::ostream* os) { *os << c.name; }

class ConvertRefusesWeights : public ::testing::TestWithParam<BadWeights> {};

TEST_P(ConvertRefusesWeights, WithOneLineNamingTheFileAndWritesNothing) {
  const auto& c = GetParam();
  ScratchDir tmp;
  seg::save_tensor_pack(seg::testing::random_dataset("pack", 3, 16, 16, 6, 2), tmp / "pack.pth");
  std::ofstream(tmp / "weights.pt", std::ios::binary) << c.bytes();
  const auto r = convert({(tmp / "weights.pt").string(), "--network", "fcn", "--data", (tmp / "pack.pth").string(),
                          "-o", (tmp / "model.pth").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("seg-convert: error: " + (tmp / "weights.pt").string() + ": ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(contains(r.err, c.expected)) << r.err;
  EXPECT_EQ(list_files(tmp.path()), (std::vector<std::string>{"pack.pth", "weights.pt"}));
}

namespace {

// The weights of an fcn for `classes` classes under the notebook's names, edited by `edit`.
std::string fcn_weights(int64_t classes, const std::function<void(seg::StateDict&)>& edit = {}) {
  seg::Model model;
  model.info.network = {"fcn", 1, classes};
  model.net = seg::make_network(model.info.network);
  auto state = seg::python_state_dict(model);
  if (edit) edit(state);
  ScratchDir tmp;
  seg::save_state_dict(state, tmp / "w.pt");
  return seg::read_file(tmp / "w.pt");
}

std::string hand_made(const std::string& before_stop) {
  using namespace seg::testing;
  return torch_archive(pickle_ordered_dict({{"0.weight", pickle_tensor("0", 2, 0, 2)}}, before_stop),
                       {{"data/0", float_record(2)}});
}

const BadWeights kBadWeights[] = {
    {"missing_key", [] { return fcn_weights(6, [](seg::StateDict& s) { s.erase(s.begin() + 4); }); },
     "has no tensor \"6.weight\""},
    {"extra_key",
     [] { return fcn_weights(6, [](seg::StateDict& s) { s.emplace_back("13.weight", torch::ones({2})); }); },
     "has a tensor \"13.weight\" that the network fcn does not have"},
    {"misshapen_tensor", [] { return fcn_weights(3); }, "tensor \"12.weight\" has shape [3, 64, 3, 3]"},
    {"unknown_opcode", [] { return hand_made("\xfe"); }, "unknown opcode 254"},
    {"opcode_outside_the_subset", [] { return hand_made("(l"); }, "has opcode 0x6c"},
    {"lying_length",
     [] {
       return hand_made(
           std::string("X\0\0\0\x40"
                       "abc",
                       8));
     },
     "declares 1073741824 bytes"},
    {"truncated_file",
     [] {
       const auto w = fcn_weights(6);
       return w.substr(0, w.size() * 2 / 3);
     },
     "not a complete torch.save archive"},
};

std::string case_name(const ::testing::TestParamInfo<BadWeights>& info) { return info.param.name; }

}  // namespace

INSTANTIATE_TEST_SUITE_P(Weights, ConvertRefusesWeights, ::testing::ValuesIn(kBadWeights), case_name);
