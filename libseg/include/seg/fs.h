#pragma once
// File-system helpers shared by every writer: outputs appear whole or not at all.
#include <filesystem>
#include <functional>
#include <string>

namespace seg {

// Calls write(tmp) with a temporary path beside `target`, then renames tmp over target.
// On any exception the temporary file is removed and the exception propagates, so a
// failed write leaves `target` as it was.
void write_atomically(const std::filesystem::path& target,
                      const std::function<void(const std::filesystem::path& tmp)>& write);

// Writes bytes to `target` atomically (fsync before rename).
void write_file_atomically(const std::filesystem::path& target, const std::string& bytes);

// Reads a whole file; throws seg::Error naming the file when it cannot.
std::string read_file(const std::filesystem::path& path);

// Creates `dir` (and parents) if needed; throws seg::Error if it cannot be created or written.
void ensure_writable_dir(const std::filesystem::path& dir);

// Removes the temporary files write_atomically left in `dir` (not recursively) when its
// process was killed: ".<name>.tmp.<pid>.<hex>" whose process no longer runs. Returns how
// many it removed. (seg-train --resume calls it on its run folder.)
int remove_stale_temporaries(const std::filesystem::path& dir);

}  // namespace seg
