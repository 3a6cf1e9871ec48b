#pragma once
// The output contract every tool shares: names that come from data are names, never paths;
// outputs stay inside their folder; no tool writes over one of its inputs; an existing output
// is replaced only when the user asks for it.
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace seg {

// A name that data gives a file (a case ID, a class name in a file name): letters, digits,
// '.', '_' and '-', starting with a letter or digit, at most kMaxNameBytes bytes. Such a name
// has no '/', is never "." or "..", never hides a file and never reads as an option.
inline constexpr size_t kMaxNameBytes = 200;
inline constexpr size_t kMaxFileNameBytes = 255;  // NAME_MAX of the common file systems
bool is_valid_name(std::string_view name, size_t max_bytes = kMaxNameBytes);
// Throws seg::Error(source, ...) saying what `what` ("case ID", "class name") must look like.
void check_name(std::string_view name, std::string_view what, const std::string& source);

// What a run does with an output file that exists already.
enum class Existing { refuse, overwrite, skip };

// The files and folders a run reads. An output that is one of them (the same file by device
// and inode, or the same path once resolved) is refused.
class Inputs {
 public:
  void add(const std::filesystem::path& path);  // paths that do not exist are ignored
  // The input that `path` is, or an empty path.
  std::filesystem::path find(const std::filesystem::path& path) const;
  // The first input that lies inside `folder` (its path, resolved, under the folder's), or an
  // empty path: a folder output replaced whole may not hold one.
  std::filesystem::path inside(const std::filesystem::path& folder) const;

 private:
  struct Entry {
    std::filesystem::path path;
    unsigned long long device, inode;
  };
  std::vector<Entry> entries_;
  // The first entry of each file and of each resolved path: find() is a lookup, not a scan, as
  // a run checks every output of thousands of films against every file of their data set.
  std::map<std::pair<unsigned long long, unsigned long long>, size_t> by_file_;
  std::map<std::string, size_t> by_path_;
};

// An output file the user named (-o FILE, --csv FILE, --overlay FILE). Throws seg::Error when
// it is a folder, a symbolic link, one of `inputs`, or exists while `existing` is refuse (the
// message ends with `how_to_replace`, the tool's words for asking, e.g. "pass --overwrite to
// replace it"). Returns false when it exists and `existing` is skip.
bool check_output_file(const std::filesystem::path& target, const Inputs& inputs, Existing existing,
                       const std::string& how_to_replace);

// A folder that takes outputs whose names come from data.
class OutputFolder {
 public:
  // Nothing is created yet: create() does that once every check has passed.
  // `how_to_replace`: the tool's words for replacing or keeping existing outputs.
  OutputFolder(std::filesystem::path root, const Inputs& inputs, Existing existing, std::string how_to_replace);

  const std::filesystem::path& root() const { return root_; }
  Existing existing() const { return existing_; }

  // root/relative, where relative is valid names separated by '/' ("overlays/JPCNN009.png"),
  // each at most kMaxFileNameBytes long (a case ID with a class name and an extension).
  // Throws seg::Error when a part is not a valid name, or when the path would leave root
  // through a symbolic link (a link inside root, the file itself a link).
  std::filesystem::path file(std::string_view relative) const;

  // Checks the planned outputs before anything is written: throws naming the first that is an
  // input, that two outputs share (names made of case IDs and class names can meet), that is
  // a folder, or the first that exists (and how many more do) when existing is refuse.
  // Returns, for each output, whether it exists.
  std::vector<bool> check(const std::vector<std::filesystem::path>& outputs) const;

  // Creates root and the given subfolders (each a valid name), and removes the temporaries
  // that killed runs left there.
  void create(const std::vector<std::string>& subfolders = {}) const;

  // The folders create() made are removed again when this object dies with them still empty:
  // a run that failed before its first output leaves no empty folders behind.
  ~OutputFolder();
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;

 private:
  std::filesystem::path root_;
  Inputs inputs_;
  Existing existing_;
  std::string how_to_replace_;
  mutable std::vector<std::filesystem::path> created_;  // by create(), outermost first
};

}  // namespace seg
