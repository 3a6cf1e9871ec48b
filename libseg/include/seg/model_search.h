#pragma once
// Models found by name: `--model jsrt-fast` reads jsrt-fast.pth from $SEG_MODEL_PATH's folders
// or from the suite's own share/segsuite/models, wherever the suite is installed.
#include <filesystem>
#include <string>
#include <vector>

namespace seg {

// The running program's file (/proc/self/exe), or an empty path when it cannot be read.
std::filesystem::path program_file();

// The suite's own data of one kind ("models", "recipes") beside `executable`:
// <its folder>/../share/segsuite/<kind>, where the install puts it and the build tree copies it.
std::filesystem::path suite_data_folder(const std::filesystem::path& executable, const std::string& kind);

// The folders a model name is looked up in, in order: each folder of `model_path` (a
// colon-separated list, as $SEG_MODEL_PATH; empty entries are skipped), then
// <executable's folder>/../share/segsuite/models (the installed models; in the build tree,
// build/share/segsuite/models). An empty `executable` adds no installed folder.
std::vector<std::filesystem::path> model_search_folders(const std::string& model_path,
                                                        const std::filesystem::path& executable);

// The folders for this process: $SEG_MODEL_PATH, then those beside /proc/self/exe.
std::vector<std::filesystem::path> model_search_folders();

// The model file `path_or_name` names. A path wins: text that exists as a file or folder, or
// that holds a '/', is returned as it is (load_model reports a missing path). Otherwise it is a
// name, with or without ".pth": the first <folder>/<name>.pth of `folders`. Throws seg::Error
// listing the places it looked in when the name is in none of them.
std::filesystem::path find_model(const std::string& path_or_name,
                                 const std::vector<std::filesystem::path>& folders);

// find_model over model_search_folders().
std::filesystem::path find_model(const std::string& path_or_name);

// find_model, but `path_or_name` itself where find_model would throw: for an input that may be
// a model or another kind of file, whose reader then reports a missing one.
std::filesystem::path find_model_or_keep(const std::string& path_or_name);

struct FoundModel {
  std::string name;             // the file name without ".pth": what --model takes
  std::filesystem::path path;   // where find_model finds it
};

// Every *.pth file of `folders`, sorted by name within each folder; a name found in several
// folders is listed once, from the first (the one find_model picks). Missing folders are skipped.
std::vector<FoundModel> list_models(const std::vector<std::filesystem::path>& folders);

}  // namespace seg
