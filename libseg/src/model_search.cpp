#include <seg/error.h>
#include <seg/model_search.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>

namespace seg {
namespace fs = std::filesystem;

namespace {

const std::string kModelSuffix = ".pth";

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string file_name_of_model(const std::string& name) {
  return ends_with(name, kModelSuffix) ? name : name + kModelSuffix;
}

// Text that exists, or that holds a folder separator, is a path and never a model name (nor is
// empty text: its reader reports it).
bool is_path(const std::string& text) {
  std::error_code error;
  return text.empty() || fs::exists(text, error) || text.find('/') != std::string::npos;
}

std::optional<fs::path> search_folders(const std::string& file_name, const std::vector<fs::path>& folders) {
  for (const auto& folder : folders) {
    std::error_code error;
    const fs::path candidate = folder / file_name;
    if (fs::is_regular_file(candidate, error)) return candidate;
  }
  return std::nullopt;
}

}  // namespace

fs::path program_file() {
  std::error_code error;
  const fs::path executable = fs::read_symlink("/proc/self/exe", error);
  return error ? fs::path() : executable;
}

fs::path suite_data_folder(const fs::path& executable, const std::string& kind) {
  return (executable.parent_path() / ".." / "share" / "segsuite" / kind).lexically_normal();
}

std::vector<fs::path> model_search_folders(const std::string& model_path, const fs::path& executable) {
  std::vector<fs::path> folders;
  std::istringstream entries(model_path);
  for (std::string entry; std::getline(entries, entry, ':');)
    if (!entry.empty()) folders.emplace_back(entry);
  if (!executable.empty())
    folders.push_back(suite_data_folder(executable, "models"));
  return folders;
}

std::vector<fs::path> model_search_folders() {
  const char* model_path = std::getenv("SEG_MODEL_PATH");
  return model_search_folders(model_path ? model_path : "", program_file());
}

fs::path find_model(const std::string& path_or_name, const std::vector<fs::path>& folders) {
  if (is_path(path_or_name)) return path_or_name;
  const std::string file_name = file_name_of_model(path_or_name);
  if (const auto found = search_folders(file_name, folders)) return *found;
  std::string places;
  for (const auto& folder : folders) places += (places.empty() ? "" : ", ") + folder.string();
  throw Error(path_or_name, "no such file or folder, and no model " + file_name + " in " +
                                (places.empty() ? std::string("any model folder") : places) +
                                "; check the path, or the name (SEG_MODEL_PATH adds folders to look in)");
}

fs::path find_model(const std::string& path_or_name) { return find_model(path_or_name, model_search_folders()); }

fs::path find_model_or_keep(const std::string& path_or_name) {
  if (is_path(path_or_name)) return path_or_name;
  return search_folders(file_name_of_model(path_or_name), model_search_folders()).value_or(path_or_name);
}

std::vector<FoundModel> list_models(const std::vector<fs::path>& folders) {
  std::vector<FoundModel> found;
  std::set<std::string> seen;
  for (const auto& folder : folders) {
    std::error_code error;
    std::vector<FoundModel> here;
    for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
      const fs::path& file = it->path();
      if (file.extension() == kModelSuffix && it->is_regular_file(error))
        here.push_back({file.stem().string(), file});
    }
    std::sort(here.begin(), here.end(), [](const FoundModel& a, const FoundModel& b) { return a.name < b.name; });
    for (auto& model : here)
      if (seen.insert(model.name).second) found.push_back(std::move(model));
  }
  return found;
}

}  // namespace seg
