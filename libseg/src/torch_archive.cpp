#include <seg/checksum.h>
#include <seg/error.h>
#include <seg/torch_archive.h>

#include "bounded_reader.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/csrc/jit/serialization/storage_context.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>

namespace seg {

namespace {

struct Bytes {
  const std::string& b;
  uint32_t u16(size_t at) const {
    return static_cast<uint32_t>(static_cast<uint8_t>(b[at])) | static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8;
  }
  uint32_t u32(size_t at) const { return u16(at) | u16(at + 2) << 16; }
  uint64_t u64(size_t at) const { return static_cast<uint64_t>(u32(at)) | static_cast<uint64_t>(u32(at + 4)) << 32; }
};

constexpr uint32_t kNoSize = 0xffffffffu;  // ZIP64: the real value is in an extra field

// Walks pickle opcodes over [begin, end): every length must fit in what remains.
std::string pickle_problem(const std::string& bytes, size_t begin, size_t end) {
  const Bytes in{bytes};
  size_t at = begin;
  auto need = [&](uint64_t n) { return n <= end - at; };
  while (at < end) {
    const auto op = static_cast<uint8_t>(bytes[at++]);
    uint64_t length = 0;  // bytes of argument after the opcode (and its length field)
    switch (op) {
      case '.':
        return "";  // STOP: the rest is not read
      // No argument.
      case '(': case '0': case '1': case '2': case 'N': case ')': case ']': case '}': case 'a': case 'e':
      case 'b': case 'd': case 'l': case 'o': case 'R': case 's': case 'u': case 't': case 'Q':
      case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91:
      case 0x92: case 0x93: case 0x94: case 0x97: case 0x98:
        break;
      // Fixed-size arguments.
      case 'K': case 'q': case 'h': case 0x80: case 0x82: length = 1; break;
      case 'M': case 0x83: length = 2; break;
      case 'J': case 'j': case 0x84: length = 4; break;
      case 'r':  // LONG_BINPUT: LibTorch grows its memo to the index, 16 bytes an entry
        if (!need(4)) return "its pickle is truncated";
        if (in.u32(at) >= end - begin)
          return "its pickle stores memo entry " + std::to_string(in.u32(at)) + ", more than its " +
                 std::to_string(end - begin) + " bytes can make (damaged or crafted)";
        length = 4;
        break;
      case 'G': case 0x95: length = 8; break;
      // Length-prefixed: 1, 4 or 8 bytes of length.
      case 'U': case 'C': case 0x8a: case 0x8c:
        if (!need(1)) return "its pickle is truncated";
        length = static_cast<uint8_t>(bytes[at]);
        at += 1;
        break;
      case 'T': case 'X': case 'B': case 0x8b:
        if (!need(4)) return "its pickle is truncated";
        length = in.u32(at);
        at += 4;
        break;
      case 0x8d: case 0x8e: case 0x96:
        if (!need(8)) return "its pickle is truncated";
        length = in.u64(at);
        at += 8;
        break;
      // Newline-terminated text: one line, or two for GLOBAL and INST.
      case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': case 'g': case 'p': case 'c': case 'i': {
        for (int lines = (op == 'c' || op == 'i') ? 2 : 1; lines > 0; --lines) {
          const size_t newline = bytes.find('\n', at);
          if (newline == std::string::npos || newline >= end) return "its pickle is truncated";
          at = newline + 1;
        }
        continue;
      }
      default:
        return "its pickle has an unknown opcode " + std::to_string(op) + " at byte " + std::to_string(at - 1 - begin);
    }
    if (!need(length))
      return "its pickle declares " + std::to_string(length) + " bytes at byte " + std::to_string(at - begin) +
             " where only " + std::to_string(end - at) + " remain (damaged or crafted)";
    at += length;
  }
  return "its pickle ends before its STOP opcode (truncated)";
}

// TorchScript's source and debug records, "<archive>/code/...".
bool is_torchscript_code(const std::string& name) {
  const size_t slash = name.find('/');
  return slash != std::string::npos && name.compare(slash + 1, 5, "code/") == 0;
}

}  // namespace

std::string torch_archive_problem(const std::string& bytes) {
  const Bytes in{bytes};
  constexpr size_t kEocd = 22, kCentral = 46, kLocal = 30;
  const std::string not_zip = "not a complete torch.save archive (empty, truncated or another format)";
  if (bytes.size() < kEocd || bytes.compare(0, 2, "PK") != 0) return not_zip;
  // The end record: LibTorch's reader takes the last signature with room for the record after
  // it, so that one it must be, and it must end the file (after its comment).
  size_t eocd = std::string::npos;
  const size_t lowest = bytes.size() > kEocd + 65535 ? bytes.size() - kEocd - 65535 : 0;
  for (size_t at = bytes.size() - kEocd + 1; at-- > lowest;)
    if (in.u32(at) == 0x06054b50u) {
      eocd = at;
      break;
    }
  if (eocd == std::string::npos || eocd + kEocd + in.u16(eocd + 20) != bytes.size()) return not_zip;
  uint64_t entries = in.u16(eocd + 10), cd_size = in.u32(eocd + 12), cd_offset = in.u32(eocd + 16);
  uint64_t cd_limit = eocd;
  // ZIP64: a locator right before the end record points to a 56-byte record holding the
  // 64-bit counts; LibTorch's reader follows it, so it must lie inside the file.
  constexpr size_t kLocator = 20, kZip64Record = 56;
  if (eocd >= kLocator && in.u32(eocd - kLocator) == 0x07064b50u) {
    const uint64_t record = in.u64(eocd - kLocator + 8);
    if (record > eocd - kLocator || eocd - kLocator - record < kZip64Record || in.u32(static_cast<size_t>(record)) != 0x06064b50u)
      return "its ZIP64 directory record is damaged";
    cd_limit = record;
    // The reader then takes the count, size and offset of the directory from the ZIP64 record
    // alone, and its bounds check wraps around on an offset near 2^64: the end record's values
    // must be the same or the "see ZIP64" markers.
    const auto at = static_cast<size_t>(record);
    const uint64_t entries64 = in.u64(at + 32), cd_size64 = in.u64(at + 40), cd_offset64 = in.u64(at + 48);
    auto disagree = [](const char* what, uint64_t zip64, uint64_t plain) {
      return std::string("its ZIP64 end record gives ") + what + " " + std::to_string(zip64) + ", its end record " +
             std::to_string(plain) + " (damaged or crafted)";
    };
    if (in.u64(at + 24) != entries64) return "its ZIP64 end record gives two entry counts (damaged or crafted)";
    if (entries != 0xffff && entries != entries64) return disagree("entry count", entries64, entries);
    if (cd_size != kNoSize && cd_size != cd_size64) return disagree("directory size", cd_size64, cd_size);
    if (cd_offset != kNoSize && cd_offset != cd_offset64) return disagree("directory offset", cd_offset64, cd_offset);
    entries = entries64;
    cd_size = cd_size64;
    cd_offset = cd_offset64;
  } else if (entries == 0xffff || cd_size == kNoSize || cd_offset == kNoSize) {
    return not_zip;  // ZIP64 markers without the ZIP64 record
  }
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) return not_zip;
  const size_t cd_end = static_cast<size_t>(cd_offset + cd_size);

  size_t at = static_cast<size_t>(cd_offset);
  std::set<std::string> names;
  for (uint64_t k = 0; k < entries; ++k) {
    const std::string damaged = "its ZIP directory is damaged (entry " + std::to_string(k) + ")";
    if (at + kCentral > cd_end || in.u32(at) != 0x02014b50u) return damaged;
    const uint32_t method = in.u16(at + 10), crc = in.u32(at + 16);
    uint64_t packed = in.u32(at + 20), size = in.u32(at + 24), local = in.u32(at + 42);
    const size_t name_length = in.u16(at + 28), extra_length = in.u16(at + 30), comment_length = in.u16(at + 32);
    // Name, extra field and comment all inside the directory: readers take them on trust.
    if (kCentral + name_length + extra_length + comment_length > cd_end - at) return damaged;
    const std::string name = bytes.substr(at + kCentral, name_length);
    // The reader finds a record by name: with two of one name, which is read is its choice.
    if (!names.insert(name).second) return "its ZIP directory names record " + name + " twice (damaged or crafted)";
    if (packed == kNoSize || size == kNoSize || local == kNoSize) {
      // The 64-bit values sit in the extra field's ZIP64 block (id 1), in this order.
      size_t field = at + kCentral + name_length;
      const size_t fields_end = field + extra_length;
      bool found = false;
      while (field + 4 <= fields_end) {
        const size_t id = in.u16(field), length = in.u16(field + 2);
        if (field + 4 + length > fields_end) return damaged;
        if (id == 1) {
          size_t value = field + 4;
          for (uint64_t* v : {&size, &packed, &local}) {
            if (*v != kNoSize) continue;
            if (value + 8 > field + 4 + length) return damaged;
            *v = in.u64(value);
            value += 8;
          }
          found = true;
          break;
        }
        field += 4 + length;
      }
      if (!found) return damaged;
    }
    at += kCentral + name_length + extra_length + comment_length;
    if (local > cd_offset || cd_offset - local < kLocal || in.u32(static_cast<size_t>(local)) != 0x04034b50u)
      return "its record " + name + " is damaged";
    const auto header = static_cast<size_t>(local);
    const size_t local_name_length = in.u16(header + 26);
    const uint64_t data = local + kLocal + local_name_length + in.u16(header + 28);
    if (data > cd_offset || packed > cd_offset - data)
      return "its record " + name + " claims " + std::to_string(packed) + " bytes, past the end of the data";
    // The reader takes only the name and extra-field lengths from the local header (they say
    // where the data starts); the rest must agree with the directory all the same. With flag
    // bit 3 the CRC and sizes follow the data instead, and the header holds zeros.
    const bool sizes_after_data = (in.u16(header + 6) & 8u) != 0;
    auto agrees = [&](uint64_t local_value, uint64_t central_value, bool zip64_marker_allowed) {
      return local_value == central_value || (sizes_after_data && local_value == 0) ||
             (zip64_marker_allowed && local_value == kNoSize);
    };
    if (bytes.compare(header + kLocal, local_name_length, name) != 0 || in.u16(header + 8) != method ||
        !agrees(in.u32(header + 14), crc, false) || !agrees(in.u32(header + 18), packed, true) ||
        !agrees(in.u32(header + 22), size, true))
      return "its record " + name + " is damaged (its local header disagrees with the ZIP directory)";
    // torch.save stores records; a deflated one expands at most about 1032-fold.
    if ((method == 0 && size != packed) || (method == 8 && size > 1032 * packed + 1024) || (method != 0 && method != 8))
      return "its record " + name + " claims " + std::to_string(size) + " bytes from " + std::to_string(packed) +
             " stored (damaged or crafted)";
    // LibTorch deflates only TorchScript's code and debug records (in checkpoints): their CRC
    // would need an inflater, and a damaged one fails to compile on load. Weights and pickles
    // are always stored, so a deflated one is not LibTorch's doing.
    if (method == 8) {
      if (!is_torchscript_code(name))
        return "its record " + name + " is compressed, which torch.save never does (damaged or crafted)";
      continue;
    }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    // (Fuzzing builds skip the comparison, as libFuzzer's convention has it, so that mutated
    // records reach the readers behind this check.)
    if (crc32(bytes.data() + data, static_cast<size_t>(packed)) != crc) return "record " + name + " fails its CRC-32 check";
#endif
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".pkl") == 0) {
      const std::string problem = pickle_problem(bytes, static_cast<size_t>(data), static_cast<size_t>(data + packed));
      if (!problem.empty()) return problem;
    }
  }
  return "";
}

c10::IValue load_pickle_archive(const std::string& bytes) {
  caffe2::serialize::PyTorchStreamReader reader(std::make_shared<detail::BoundedReader>(bytes));
  // What torch::pickle_load does, with every storage given beforehand at its record's size.
  auto storages = std::make_shared<torch::jit::DeserializationStorageContext>();
  for (const auto& name : reader.getAllRecords()) {
    if (name.rfind("data/", 0) != 0) continue;
    auto record = reader.getRecord(name);
    storages->addStorage(name.substr(5), c10::Storage(c10::Storage::use_byte_size_t(), std::get<1>(record),
                                                      std::move(std::get<0>(record)), nullptr, false));
  }
  return torch::jit::readArchiveAndTensors("data", "", "", {}, {}, {}, reader,
                                           torch::jit::Unpickler::defaultTypeParser, storages);
}

void check_tensor_in_storage(const at::Tensor& t, const std::string& source, const std::string& what) {
  if (!t.defined() || !t.has_storage())
    throw Error(source, what + " is not a plain dense tensor (damaged or crafted)");
  if (t.numel() == 0) return;
  // The furthest element, in elements from the storage's start: offset + sum (size - 1) * stride
  // (overflow counts as past the end).
  if (t.storage_offset() < 0) throw Error(source, what + " has a negative storage offset (damaged or crafted)");
  uint64_t last = static_cast<uint64_t>(t.storage_offset());
  bool overflow = false;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.stride(d) < 0) throw Error(source, what + " has a negative stride (damaged or crafted)");
    uint64_t reach = 0;
    overflow = overflow || __builtin_mul_overflow(static_cast<uint64_t>(t.size(d) - 1), static_cast<uint64_t>(t.stride(d)), &reach) ||
               __builtin_add_overflow(last, reach, &last);
  }
  uint64_t bytes = 0;
  overflow = overflow || __builtin_add_overflow(last, uint64_t{1}, &last) ||
             __builtin_mul_overflow(last, static_cast<uint64_t>(t.element_size()), &bytes);
  if (overflow || bytes > t.storage().nbytes())
    throw Error(source, what + " has sizes and strides that reach past its " + std::to_string(t.storage().nbytes()) +
                            " bytes of data (damaged or crafted)");
}

}  // namespace seg
