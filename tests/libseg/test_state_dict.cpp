// The PyTorch state_dict reader, the name tables, import into our networks and export.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/models.h>
#include <seg/state_dict.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <fstream>

#include "fixtures.h"
#include "notebook_networks_py.h"
#include "python_support.h"
#include "state_dict_fixtures.h"
#include "test_support.h"

using seg::testing::contains;
using seg::testing::ScratchDir;
namespace fs = std::filesystem;

namespace {

at::Tensor tensor_named(const seg::StateDict& state, const std::string& name) {
  for (const auto& [key, tensor] : state)
    if (key == name) return tensor;
  return {};
}

std::vector<std::string> names_of(const seg::StateDict& state) {
  std::vector<std::string> names;
  for (const auto& entry : state) names.push_back(entry.first);
  return names;
}

// What Python wrote next to a state_dict: "name shape..." lines and the float32 values in order.
struct PythonValues {
  std::vector<std::string> names;
  std::vector<at::Tensor> values;
};
PythonValues read_python_values(const fs::path& listing, const fs::path& raw) {
  PythonValues result;
  const std::string bytes = seg::read_file(raw);
  std::ifstream in(listing);
  std::string name;
  int64_t count = 0, at = 0;
  while (in >> name >> count) {
    result.names.push_back(name);
    result.values.push_back(torch::from_blob(const_cast<char*>(bytes.data()) + at * 4, {count}, torch::kFloat).clone());
    at += count;
  }
  return result;
}

}  // namespace

// Python's torch.save of the notebook's networks, in each form a user may have: the
// OrderedDict of model.state_dict(), a plain dict, protocol 4, the parameters themselves
// (keep_vars=True) and a training checkpoint holding the state_dict.
TEST(StateDict, ReadsWhatPythonSavesOfTheNotebooksNetworks) {
  SEG_REQUIRE_PYTHON("torch");
  ScratchDir tmp;
  const std::string dir = tmp.path().string();
  ASSERT_TRUE(seg::testing::run_python(seg::testing::kNotebookNetworksPython + R"PY(
dir = ')PY" + dir + R"PY('
torch.manual_seed(1)
net = fullyconv(6)
sd = net.state_dict()
torch.save(sd, dir + '/ordered.pt')
torch.save(dict(sd), dir + '/plain.pt')
torch.save(sd, dir + '/protocol4.pt', pickle_protocol=4)
torch.save(net.state_dict(keep_vars=True), dir + '/parameters.pt')
opt = torch.optim.Adam(net.parameters())
torch.save({'epoch': 3, 'state_dict': sd, 'optimizer': opt.state_dict(), 'loss': 0.25}, dir + '/checkpoint.pt')
torch.save(LightUNet(6).state_dict(), dir + '/unet.pt')
with open(dir + '/values.txt', 'w') as listing, open(dir + '/values.bin', 'wb') as raw:
    for name, t in sd.items():
        listing.write(f'{name} {t.numel()}\n')
        raw.write(t.contiguous().numpy().tobytes())
)PY",
                                       tmp.path()))
      << seg::read_file(tmp / "python.log");
  const auto expected = read_python_values(tmp / "values.txt", tmp / "values.bin");
  ASSERT_EQ(expected.names.size(), 10u);  // five convolutions, weight and bias each
  for (const char* file : {"ordered.pt", "plain.pt", "protocol4.pt", "parameters.pt", "checkpoint.pt"}) {
    SCOPED_TRACE(file);
    const auto state = seg::read_state_dict(tmp / file);
    EXPECT_EQ(names_of(state), expected.names);
    for (size_t k = 0; k < expected.names.size(); ++k)
      EXPECT_TRUE(torch::equal(tensor_named(state, expected.names[k]).flatten(), expected.values[k]))
          << expected.names[k];
  }
  EXPECT_EQ(tensor_named(seg::read_state_dict(tmp / "ordered.pt"), "12.weight").sizes(),
            (std::vector<int64_t>{6, 64, 3, 3}));
  // The LightUNet's names are ours: it loads as it is.
  auto unet = seg::make_network({"light-unet", 1, 6});
  seg::load_python_state_dict(*unet, "light-unet", seg::read_state_dict(tmp / "unet.pt"), "unet.pt");
}

// Each hostile pickle is refused with one line that names the file and says what is wrong: by
// our pickle reader itself (past the archive check), and in an archive (where the archive
// check may refuse it first).
struct HostilePickle {
  std::string name;
  std::string pickle;
  std::map<std::string, std::string> records;  // "data/0" -> its bytes
  std::string expected;                        // part of our reader's message
};
void PrintTo(const HostilePickle& c, std::ostream* os) { *os << c.name; }

class StateDictRefuses : public ::testing::TestWithParam<HostilePickle> {};

TEST_P(StateDictRefuses, WithOneLineNamingTheFile) {
  const auto& c = GetParam();
  auto records = [&](const std::string& key) -> std::optional<std::string> {
    const auto it = c.records.find("data/" + key);
    if (it == c.records.end()) return std::nullopt;
    return it->second;
  };
  std::string error = seg::testing::error_of([&] { seg::state_dict_from_pickle(c.pickle, records, "weights.pt"); });
  EXPECT_EQ(error.rfind("weights.pt: ", 0), 0u) << error;
  EXPECT_FALSE(contains(error, "\n")) << error;
  EXPECT_TRUE(contains(error, c.expected)) << error;
  const std::string archive = seg::testing::torch_archive(c.pickle, c.records);
  error = seg::testing::error_of([&] { seg::state_dict_from_bytes(archive, "weights.pt"); });
  EXPECT_EQ(error.rfind("weights.pt: ", 0), 0u) << error;
  EXPECT_FALSE(contains(error, "\n")) << error;
}

namespace {
using seg::testing::float_record;
using seg::testing::pickle_global;
using seg::testing::pickle_ordered_dict;
using seg::testing::pickle_tensor;
using seg::testing::pickle_text;

const std::map<std::string, std::string> kTwoFloats = {{"data/0", float_record(2)}};
std::string one_tensor(const std::string& before_stop = "") {
  return pickle_ordered_dict({{"w", pickle_tensor("0", 2, 0, 2)}}, before_stop);
}

const HostilePickle kHostilePickles[] = {
    // The honest one's flaw is only its missing record: the rest of the table is that pickle
    // with one thing wrong.
    {"missing_record", one_tensor(), {}, "lacks the tensor data data/0"},
    {"unknown_opcode", one_tensor("\xff"), kTwoFloats, "has opcode 0xff"},
    {"opcode_outside_the_subset", one_tensor("N0"), kTwoFloats, "has opcode 0x30"},
    {"global_outside_the_subset", one_tensor(pickle_global("os", "system") + "0"), kTwoFloats, "uses os.system"},
    {"lying_length",
     one_tensor("X\xf0\xff\xff\x7f"
                "abc"),
     kTwoFloats, "declares 2147483632 bytes"},
    {"storage_larger_than_its_record", pickle_ordered_dict({{"w", pickle_tensor("0", 200, 0, 2)}}), kTwoFloats,
     "holds 8 bytes for 200 elements"},
    {"tensor_past_its_storage", pickle_ordered_dict({{"w", pickle_tensor("0", 2, 1, 2)}}), kTwoFloats,
     "reach past its storage of 2 elements"},
    {"no_stop", one_tensor().substr(0, one_tensor().size() - 1), kTwoFloats, "ends before its STOP opcode"},
    {"memo_never_stored",
     one_tensor("h\x07"
                "0"),
     kTwoFloats, "recalls memo 7"},
    {"list_inside_itself",
     one_tensor("]q\x01h\x01"
                "a0"),
     kTwoFloats, "puts a container inside itself"},
    {"nesting_too_deep", one_tensor(std::string(40, ']') + std::string(39, 'a') + "0"), kTwoFloats,
     "nests containers more than 32 deep"},
    {"not_a_dict", "\x80\x02].", {}, "it holds a list, not a dict of tensors"},
    {"entry_not_a_tensor", pickle_ordered_dict({{"w", pickle_text("x")}}), {}, "its entry \"w\" is a str"},
    {"no_tensors", pickle_ordered_dict({}), {}, "holds no tensors"},
    {"ordered_dict_with_arguments",
     "\x80\x02" + pickle_global("collections", "OrderedDict") + "N\x85R.",
     {},
     "makes an OrderedDict from arguments"},
};

std::string case_name(const ::testing::TestParamInfo<HostilePickle>& info) { return info.param.name; }
}  // namespace

INSTANTIATE_TEST_SUITE_P(Pickles, StateDictRefuses, ::testing::ValuesIn(kHostilePickles), case_name);

TEST(StateDict, BigEndianTensorsAreRefused) {
  const std::string bytes =
      seg::testing::torch_archive(one_tensor(), {{"data/0", float_record(2)}, {"byteorder", "big"}});
  const std::string error = seg::testing::error_of([&] { seg::state_dict_from_bytes(bytes, "weights.pt"); });
  EXPECT_EQ(error.rfind("weights.pt: holds big-endian tensors", 0), 0u) << error;
}

TEST(StateDict, HandMadePickleOfTheTableReadsWhenWhole) {
  // The table's cases differ from this one in one thing each.
  const auto state = seg::state_dict_from_bytes(
      seg::testing::torch_archive(one_tensor(), {{"data/0", float_record(2)}, {"byteorder", "little"}}), "weights.pt");
  ASSERT_EQ(state.size(), 1u);
  EXPECT_TRUE(torch::equal(state[0].second, torch::tensor({1.0f, 2.0f})));
}

TEST(StateDict, TruncatedArchiveIsRefused) {
  const std::string bytes = seg::testing::torch_archive(one_tensor(), kTwoFloats);
  for (size_t keep : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    const std::string error =
        seg::testing::error_of([&] { seg::state_dict_from_bytes(bytes.substr(0, keep), "weights.pt"); });
    EXPECT_EQ(error.rfind("weights.pt: not a readable PyTorch state_dict: not a complete torch.save archive", 0), 0u)
        << keep << ": " << error;
  }
}

// Our fcn nests each conv group; the notebook's fullyconv is flat: every parameter has its
// notebook name, and every registered network has a table.
TEST(StateDict, NameTablesCoverEveryNetwork) {
  auto fcn = seg::make_network({"fcn", 1, 6});
  std::vector<std::string> python;
  for (const auto& item : fcn->named_parameters()) python.push_back(seg::python_parameter_name("fcn", item.key()));
  EXPECT_EQ(python, (std::vector<std::string>{"0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias",
                                              "9.weight", "9.bias", "12.weight", "12.bias"}));
  for (const auto& name : seg::network_names()) {
    auto net = seg::make_network({name, 1, 3});
    for (const auto& item : net->named_parameters()) EXPECT_NO_THROW(seg::python_parameter_name(name, item.key()));
  }
  EXPECT_EQ(seg::python_parameter_name("res-unet", "encoder1.conv1.weight"), "encoder1.conv1.weight");
}

// Export, then read back with our reader and load: the same weights (our pickle_save's typed
// dict is in the subset too).
TEST(StateDict, ExportReadsBackIntoTheSameNetwork) {
  ScratchDir tmp;
  for (const std::string network : {"fcn", "res-unet"}) {
    SCOPED_TRACE(network);
    torch::manual_seed(4);
    seg::Model model;
    model.info.network = {network, 1, 3};
    model.net = seg::make_network(model.info.network);
    seg::save_state_dict(seg::python_state_dict(model), tmp / "weights.pt");
    auto other = seg::make_network(model.info.network);
    seg::load_python_state_dict(*other, network, seg::read_state_dict(tmp / "weights.pt"), "weights.pt");
    const auto ours = model.net->named_parameters(), theirs = other->named_parameters();
    ASSERT_EQ(ours.size(), theirs.size());
    for (const auto& item : ours) EXPECT_TRUE(torch::equal(item.value(), theirs[item.key()])) << item.key();
  }
}

// A missing, an extra and a misshapen tensor: the first one is named, with what was expected.
TEST(StateDict, LoadNamesTheFirstMissingExtraOrMisshapenTensor) {
  seg::Model model;
  model.info.network = {"fcn", 1, 6};
  model.net = seg::make_network(model.info.network);
  const seg::StateDict good = seg::python_state_dict(model);
  auto load = [&](const seg::StateDict& state) {
    auto net = seg::make_network({"fcn", 1, 6});
    return seg::testing::error_of([&] { seg::load_python_state_dict(*net, "fcn", state, "weights.pt"); });
  };
  EXPECT_EQ(load(good), "");
  seg::StateDict missing = good;
  missing.erase(missing.begin() + 2);  // 3.weight
  EXPECT_TRUE(contains(load(missing), "weights.pt: has no tensor \"3.weight\", which the network fcn needs"))
      << load(missing);
  seg::StateDict extra = good;
  extra.emplace_back("15.weight", torch::zeros({1}));
  EXPECT_TRUE(contains(load(extra), "weights.pt: has a tensor \"15.weight\" that the network fcn does not have"))
      << load(extra);
  seg::StateDict misshapen = good;
  misshapen[8].second = torch::zeros({3, 64, 3, 3});
  EXPECT_TRUE(contains(load(misshapen),
                       "tensor \"12.weight\" has shape [3, 64, 3, 3] where the network fcn expects [6, 64, 3, 3]"))
      << load(misshapen);
  seg::StateDict integers = good;
  integers[1].second = torch::zeros({16}, torch::kLong);
  EXPECT_TRUE(contains(load(integers), "tensor \"0.bias\" holds Long values")) << load(integers);
}

// torch.save's format before the ZIP archive: named, with what to do.
TEST(StateDict, LegacyFormatIsNamed) {
  const std::string legacy = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
  const std::string error = seg::testing::error_of([&] { seg::state_dict_from_bytes(legacy, "old.pt"); });
  EXPECT_EQ(error.rfind("old.pt: is in torch.save's legacy format", 0), 0u) << error;
}
