#pragma once
// The films a segmentation run reads: image files, folders of them, or a data set's split,
// each with the case ID its outputs are named by. Everything is checked before the first
// output is written.
#include <seg/image.h>
#include <seg/io/image_io.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace seg::io {

// One film to segment: a file, or a row of a tensor pack already in memory.
struct FilmInput {
  std::string case_id;
  std::filesystem::path path;  // empty for rows of a tensor pack
  std::optional<Image> in_memory;
  // The file, or "case <ID>" for a row of a tensor pack: what messages name.
  std::string source() const { return path.empty() ? "case " + case_id : path.string(); }
  // The film's pixels: read from its file, or the row in memory.
  Image read(const ReadOptions& options = {}) const;
};

// Appends the file `path`, or every image file of the folder `path` (in name order).
// Throws seg::Error when it does not exist or a folder holds no image file.
void add_films(std::vector<FilmInput>& films, const std::filesystem::path& path);

// The cases of one split of a data set: a folder's image files themselves (so their geometry is
// kept), or a tensor pack's rows. Throws seg::Error naming the data set when the split is not
// there, listing those that are.
std::vector<FilmInput> data_set_films(const std::filesystem::path& data, const std::string& split);

// Throws seg::Error naming the film when a case ID is not a valid file name, or when two films
// share one (their outputs would collide).
void check_case_ids(const std::vector<FilmInput>& films);

// Every count-th film from the index-th (0 <= index < count): one shard of a cohort that
// several processes split between them.
std::vector<FilmInput> shard_of(const std::vector<FilmInput>& films, int64_t index, int64_t count);

}  // namespace seg::io
