#pragma once
// Checks a torch.save archive (a ZIP of records with a pickle, as torch::save, pickle_save and
// Python's torch.save write) before LibTorch 1.13's reader sees it. That reader trusts the
// file: on some damaged archives its ZIP code (miniz) reads past the buffer, and its
// unpickler allocates whatever a length field says (4 GB for one crafted string). Both were
// found by fuzzing (fuzz/regressions/).
#include <ATen/core/Tensor.h>

#include <string>

namespace c10 {
struct IValue;
}

namespace seg {

// "" when the archive is sound enough to hand to LibTorch's readers, else what is wrong
// ("not a complete torch.save archive ...", "its record X claims N bytes ...", "record X fails
// its CRC-32 check", "its pickle ..."). Sound means: a well-formed ZIP end record, and a ZIP64
// one that agrees with it; every central-directory entry inside the file; local headers that
// agree with the directory; stored records no larger than the file, each matching its CRC-32;
// records deflated only where LibTorch deflates them (TorchScript's code/, whose CRC is not
// checked); and in every .pkl record, opcodes that pickle knows, whose lengths fit in what
// remains of the record.
std::string torch_archive_problem(const std::string& bytes);

// torch::pickle_load for bytes that torch_archive_problem found sound, but safer in two ways:
// its reads stop at the end of the bytes, and each tensor's storage is as large as its record.
// (LibTorch sizes a storage as the pickle says, whatever its record holds: a pickle naming
// another, smaller record, found by fuzzing, made check_tensor_in_storage pass a tensor that
// reads past its data.) Throws what LibTorch throws (std::exception) on anything else amiss.
c10::IValue load_pickle_archive(const std::string& bytes);

// The unpickler also builds tensors with whatever sizes, strides and offset the pickle gives,
// unchecked against their storage (found by fuzzing: reading such a tensor reads freed
// memory). Throws seg::Error naming `source` and `what` unless every element of `t` lies
// inside its storage.
void check_tensor_in_storage(const at::Tensor& t, const std::string& source, const std::string& what);

}  // namespace seg
