#pragma once
// Checks a torch.save archive (a ZIP of records with a pickle, as torch::save, pickle_save and
// Python's torch.save write) before LibTorch 1.13's reader sees it. That reader trusts the
// file: on some damaged archives its ZIP code (miniz) reads past the buffer, and its
// unpickler allocates whatever a length field says (4 GB for one crafted string). Both were
// found by fuzzing (fuzz/regressions/).
#include <string>

namespace seg {

// "" when the archive is sound enough to hand to torch::pickle_load, else what is wrong
// ("not a ZIP archive ...", "record X claims N bytes ...", "its pickle ...").
// Sound means: a well-formed ZIP end record; every central-directory entry inside the file;
// stored records no larger than the file; and in every .pkl record, opcodes that pickle
// knows, whose lengths fit in what remains of the record.
std::string torch_archive_problem(const std::string& bytes);

}  // namespace seg
