#include <seg/error.h>
#include <seg/fs.h>
#include <seg/output.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace seg {
namespace fs = std::filesystem;

namespace {
bool is_name_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '.' || c == '_' || c == '-';
}

fs::path resolved(const fs::path& path) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal() : canonical;
}
}  // namespace

bool is_valid_name(std::string_view name, size_t max_bytes) {
  if (name.empty() || name.size() > max_bytes) return false;
  if (std::isalnum(static_cast<unsigned char>(name.front())) == 0) return false;
  for (char c : name)
    if (!is_name_char(c)) return false;
  return true;
}

void check_name(std::string_view name, std::string_view what, const std::string& source) {
  if (is_valid_name(name)) return;
  std::string shown(name.substr(0, 60));
  for (char& c : shown)
    if (std::isprint(static_cast<unsigned char>(c)) == 0) c = '?';
  throw Error(source, std::string(what) + " \"" + shown + (name.size() > 60 ? "..." : "") +
                          "\" cannot name a file: use letters, digits, '.', '_' and '-', starting with a letter or "
                          "digit, at most " + std::to_string(kMaxNameBytes) + " bytes; rename it");
}

void Inputs::add(const fs::path& path) {
  struct stat info {};
  if (path.empty() || ::stat(path.c_str(), &info) != 0) return;
  entries_.push_back({resolved(path), static_cast<unsigned long long>(info.st_dev),
                      static_cast<unsigned long long>(info.st_ino)});
  const Entry& e = entries_.back();
  by_file_.emplace(std::make_pair(e.device, e.inode), entries_.size() - 1);
  by_path_.emplace(e.path.string(), entries_.size() - 1);
}

fs::path Inputs::find(const fs::path& path) const {
  struct stat info {};
  const bool exists = ::stat(path.c_str(), &info) == 0;
  size_t first = entries_.size();
  if (exists) {
    const auto same_file = by_file_.find({static_cast<unsigned long long>(info.st_dev), static_cast<unsigned long long>(info.st_ino)});
    if (same_file != by_file_.end()) first = same_file->second;
  }
  const auto same_path = by_path_.find(resolved(path).string());
  if (same_path != by_path_.end()) first = std::min(first, same_path->second);
  return first < entries_.size() ? entries_[first].path : fs::path();
}

fs::path Inputs::inside(const fs::path& folder) const {
  fs::path root = resolved(folder);
  if (!root.has_filename()) root = root.parent_path();  // "out/"
  for (const auto& e : entries_) {
    const auto [end, rest] = std::mismatch(root.begin(), root.end(), e.path.begin(), e.path.end());
    if (end == root.end() && rest != e.path.end()) return e.path;
  }
  return {};
}

bool check_output_file(const fs::path& target, const Inputs& inputs, Existing existing,
                       const std::string& how_to_replace) {
  std::error_code ec;
  const auto status = fs::symlink_status(target, ec);
  if (fs::is_symlink(status))
    throw Error(target.string(), "is a symbolic link; an output is written as a plain file, so give another name");
  if (fs::is_directory(status)) throw Error(target.string(), "is a folder; give a file name");
  if (const fs::path input = inputs.find(target); !input.empty())
    throw Error(target.string(), "is an input of this run (" + input.string() + "); choose another output name");
  if (!fs::exists(status)) return true;
  if (existing == Existing::skip) return false;
  if (existing == Existing::refuse) throw Error(target.string(), "exists; " + how_to_replace);
  return true;
}

OutputFolder::OutputFolder(fs::path root, const Inputs& inputs, Existing existing, std::string how_to_replace)
    : root_(std::move(root)), inputs_(inputs), existing_(existing), how_to_replace_(std::move(how_to_replace)) {
  std::error_code ec;
  const auto status = fs::symlink_status(root_, ec);
  if (fs::exists(status) && !fs::is_directory(fs::status(root_, ec)))
    throw Error(root_.string(), "exists and is not a folder; choose another output folder");
  if (const fs::path input = inputs_.find(root_); !input.empty())
    throw Error(root_.string(), "is an input of this run (" + input.string() +
                                    "); write the outputs into another folder");
}

fs::path OutputFolder::file(std::string_view relative) const {
  fs::path path = root_;
  size_t start = 0;
  while (start <= relative.size()) {
    const size_t slash = relative.find('/', start);
    const std::string_view part = relative.substr(start, slash == std::string_view::npos ? relative.npos : slash - start);
    if (!is_valid_name(part, kMaxFileNameBytes))
      throw Error((root_ / std::string(relative)).string(),
                  "cannot name an output file: use letters, digits, '.', '_' and '-', starting with a letter or digit, "
                  "at most " + std::to_string(kMaxFileNameBytes) + " bytes");
    path /= std::string(part);
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(path, ec)))
      throw Error(path.string(), "is a symbolic link; outputs stay inside " + root_.string() +
                                     ", so it is not followed: remove it or choose another output folder");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return path;
}

std::vector<bool> OutputFolder::check(const std::vector<fs::path>& outputs) const {
  std::vector<bool> exists(outputs.size(), false);
  size_t count = 0, first = 0;
  std::set<std::string> planned;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (const fs::path input = inputs_.find(outputs[i]); !input.empty())
      throw Error(outputs[i].string(), "is an input of this run (" + input.string() +
                                           "); write the outputs into another folder");
    if (!planned.insert(outputs[i].lexically_normal().string()).second)
      throw Error(outputs[i].string(), "is the name of two outputs of this run (a case ID and a class name joined with '_' "
                                       "can meet another's); rename one of the inputs");
    std::error_code ec;
    const auto status = fs::symlink_status(outputs[i], ec);
    if (fs::is_directory(status)) throw Error(outputs[i].string(), "is a folder where an output file goes; remove it or choose another output folder");
    exists[i] = fs::exists(status);
    if (exists[i] && count++ == 0) first = i;
  }
  if (count > 0 && existing_ == Existing::refuse)
    throw Error(outputs[first].string(),
                "exists" + (count > 1 ? " (and " + std::to_string(count - 1) + " more outputs of this run)" : std::string()) +
                    "; " + how_to_replace_);
  return exists;
}

void OutputFolder::create(const std::vector<std::string>& subfolders) const {
  // The missing folders from the outermost down, so that they can be removed innermost first.
  auto make = [this](const fs::path& folder) {
    std::vector<fs::path> missing;
    for (fs::path f = fs::absolute(folder).lexically_normal(); !f.empty() && !fs::exists(f); f = f.parent_path())
      missing.insert(missing.begin(), f);
    ensure_writable_dir(folder);
    created_.insert(created_.end(), missing.begin(), missing.end());
    remove_stale_temporaries(folder);
  };
  make(root_);
  for (const auto& sub : subfolders) make(file(sub));
}

OutputFolder::~OutputFolder() {
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    std::error_code ec;
    if (fs::is_empty(*it, ec) && !ec) fs::remove(*it, ec);
  }
}

}  // namespace seg
