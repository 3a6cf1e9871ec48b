#pragma once
// Hand-made torch.save archives for the state_dict reader's tests: a pickle written opcode by
// opcode (as Python's pickle module writes a state_dict), put into a ZIP archive by
// LibTorch's own writer, so that one byte can be made wrong at a time.
#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace seg::testing {

// Pickle opcodes and arguments, as bytes.
inline std::string pickle_u32(uint32_t v) {
  std::string s;
  for (int k = 0; k < 4; ++k) s.push_back(static_cast<char>(v >> (8 * k) & 0xff));
  return s;
}
inline std::string pickle_text(const std::string& text) {  // BINUNICODE
  return "X" + pickle_u32(static_cast<uint32_t>(text.size())) + text;
}
inline std::string pickle_global(const std::string& module, const std::string& name) {  // GLOBAL
  return "c" + module + "\n" + name + "\n";
}
inline std::string pickle_int(uint8_t v) { return std::string("K") + static_cast<char>(v); }  // BININT1

// One tensor as torch.save writes it: _rebuild_tensor_v2(storage, offset, (size,), (1,), False,
// OrderedDict()) over the storage ("storage", torch.FloatStorage, key, "cpu", numel).
inline std::string pickle_tensor(const std::string& key, uint8_t numel, uint8_t offset, uint8_t size) {
  return pickle_global("torch._utils", "_rebuild_tensor_v2") + "((" + pickle_text("storage") +
         pickle_global("torch", "FloatStorage") + pickle_text(key) + pickle_text("cpu") + pickle_int(numel) + "tQ" +
         pickle_int(offset) + pickle_int(size) + "\x85" + pickle_int(1) + "\x85" + "\x89" +
         pickle_global("collections", "OrderedDict") + ")Rt" + "R";
}

// An OrderedDict of (name, tensor pickle) entries, and what follows it before STOP.
inline std::string pickle_ordered_dict(const std::vector<std::pair<std::string, std::string>>& entries,
                                       const std::string& before_stop = "") {
  std::string p = std::string("\x80\x02") + pickle_global("collections", "OrderedDict") + ")R(";
  for (const auto& [name, tensor] : entries) p += pickle_text(name) + tensor;
  return p + "u" + before_stop + ".";
}

// A torch.save archive (ZIP) holding `pickle` as data.pkl and the given records (name -> bytes,
// e.g. "data/0").
inline std::string torch_archive(const std::string& pickle, const std::map<std::string, std::string>& records) {
  std::string bytes;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    for (const auto& [name, data] : records) writer.writeRecord(name, data.data(), data.size());
    writer.writeEndOfFile();
  }
  return bytes;
}

// `count` float32 values 1, 2, 3, ... as a storage record's bytes.
inline std::string float_record(int count) {
  std::string bytes;
  for (int k = 1; k <= count; ++k) {
    const float v = static_cast<float>(k);
    bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  return bytes;
}

}  // namespace seg::testing
