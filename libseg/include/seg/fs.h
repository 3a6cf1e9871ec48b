#pragma once
// File-system helpers shared by every writer: outputs appear whole or not at all, a failed
// write never looks like success, and an interrupted run leaves no temporary file behind.
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace seg {

// Temporary files and folders are named ".segtmp.<pid>@<machine>.<hex>" (plus the target's
// extension) beside their target: short, so any legal target name works; hidden; skipped by
// every folder reader (is_temporary_name); and owned by a process of one machine, so runs on
// several machines writing to one shared folder (seg-segment --shard) leave each other's alone.
bool is_temporary_name(const std::string& file_name);

// This machine's name as temporary names carry it: the host name up to its first dot, letters,
// digits and '-' only, at most 32 characters.
const std::string& machine_tag();

// Checks that the finished temporary file `tmp` is complete (its format's own markers and
// sizes); throws seg::Error when it is not.
using VerifyWritten = std::function<void(const std::filesystem::path& tmp)>;

// Calls write(tmp) for a temporary file beside `target` with the target's extension (libraries
// choose the format by it), then checks the file and renames it over target: the temporary
// must exist, not be empty, pass fsync and `verify`. On any failure the temporary is removed,
// target is left as it was, and seg::Error(target, reason) is thrown; a full disk reads
// "no space left on device". `verify` is required: a writer that does not report its own
// errors (ITK's) can only be trusted through what it left on disk.
void write_atomically(const std::filesystem::path& target,
                      const std::function<void(const std::filesystem::path& tmp)>& write,
                      const VerifyWritten& verify);

// Writes bytes to target atomically; every write(2), fsync and close is checked.
void write_file_atomically(const std::filesystem::path& target, std::string_view bytes);

// Tests only: the nth file written from now on fails as on a full disk (the writer gets half
// its bytes out); 0 switches this off. A tool binary takes the same from $SEG_TEST_FAIL_WRITE=N
// (the N-th file it writes).
void fail_write_for_testing(int nth);

// Reads a whole file; throws seg::Error naming the file when it cannot.
std::string read_file(const std::filesystem::path& path);
// read_file for what must be a file on disk (a model, a dataset.json, a tensor pack): a FIFO or
// a device is refused, named, where reading it would wait or run for ever.
std::string read_regular_file(const std::filesystem::path& path);

// Creates `dir` (and parents) if needed; throws seg::Error if it cannot be created or written.
void ensure_writable_dir(const std::filesystem::path& dir);

// Removes the temporaries that killed processes left in `dir` (not recursively): those of this
// machine whose process no longer runs. Returns how many it removed.
int remove_stale_temporaries(const std::filesystem::path& dir);

// Files written as one set (a film's outputs, augmented samples with their montage): write()
// runs a writer for one file of it. Destroyed before commit(), as when a writer throws, the
// set removes the files it added; files that were there before stay (each write replaced
// them whole, and removing them would lose what the user had).
class FileSet {
 public:
  FileSet() = default;
  ~FileSet();
  FileSet(const FileSet&) = delete;
  FileSet& operator=(const FileSet&) = delete;

  void write(const std::filesystem::path& file, const std::function<void()>& writer);
  void commit() { added_.clear(); }

 private:
  std::vector<std::filesystem::path> added_;
};

// A folder written whole: everything goes into a hidden temporary folder, which commit() moves
// into place. When target does not exist the temporary folder is made beside it (its missing
// parents created) and commit() is one rename. When it exists (the caller has checked that
// replacing is wanted) the temporary folder is made inside it, on its own file system, and
// commit() first checks every destination (no symbolic link followed, no file where a folder
// goes or the reverse), then moves each file over its namesake; nothing else in target is
// touched. Destroyed uncommitted, the temporary folder and the parents it created are removed.
class StagedFolder {
 public:
  explicit StagedFolder(std::filesystem::path target);
  ~StagedFolder();
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  void commit();

 private:
  std::filesystem::path target_, staging_;
  void remove_created_parents() const;
  void keep_created_parents() const;  // no longer removed at a signal: they hold the output
  std::filesystem::path first_created_;  // the outermost parent folder the constructor made, if any
  bool inside_target_ = false;
  bool committed_ = false;
};

// On SIGINT, SIGTERM and SIGHUP (each unless the process was started with it ignored): remove
// the temporary files and folders in flight, print "<program>: interrupted by SIGINT; ..." on
// stderr and exit with 128 + the signal's number (130, 143, 129). Call once, first thing in main.
void remove_temporaries_on_signals(const std::string& program);

// The process's stderr as it was when first asked for (a duplicate of file descriptor 2),
// unbuffered. The tools' messages and the interrupt line go here: io mutes descriptor 2 while
// a library decodes or writes (its own warnings would follow the tool's one line), and with
// films read on several threads that can happen at any moment.
std::ostream& tool_messages();
bool tool_messages_on_terminal();

}  // namespace seg
