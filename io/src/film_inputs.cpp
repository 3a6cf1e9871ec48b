#include <seg/error.h>
#include <seg/io/dataset_io.h>
#include <seg/io/film_inputs.h>
#include <seg/output.h>

#include <map>

namespace seg::io {
namespace fs = std::filesystem;

Image FilmInput::read(const ReadOptions& options) const { return in_memory ? *in_memory : read_image(path, options); }

void add_films(std::vector<FilmInput>& films, const fs::path& path) {
  if (fs::is_directory(path)) {
    const auto files = image_files_in(path);
    if (files.empty()) throw Error(path.string(), "folder holds no image files this tool reads");
    for (const auto& f : files) films.push_back({case_id_of(f), f, std::nullopt});
    return;
  }
  if (!fs::exists(path)) throw Error(path.string(), "no such file");
  films.push_back({case_id_of(path), path, std::nullopt});
}

std::vector<FilmInput> data_set_films(const fs::path& data, const std::string& split) {
  std::vector<FilmInput> films;
  if (!is_tensor_pack(data)) {
    const fs::path root = fs::is_directory(data) ? data : data.parent_path();
    const auto spec = DatasetSpec::read(fs::is_directory(data) ? root / "dataset.json" : data);
    for (const auto& c : split_cases(spec.splits, split, data.string())) films.push_back({c, spec.image_path(root, c), std::nullopt});
    return films;
  }
  const Dataset pack = load_dataset(data, {std::nullopt, false}).subset(split);
  for (int64_t i = 0; i < pack.size(); ++i) {
    Image image;
    image.pixels = pack.images[i];
    image.pixel_type = pack.images.scalar_type() == at::kByte ? "uint8" : "float32";
    films.push_back({pack.cases[static_cast<size_t>(i)], {}, image});
  }
  return films;
}

void check_case_ids(const std::vector<FilmInput>& films) {
  std::map<std::string, std::string> seen;
  for (const auto& film : films) {
    check_name(film.case_id, "case ID", film.source());
    const auto [it, fresh] = seen.emplace(film.case_id, film.source());
    if (!fresh)
      throw Error(film.source(), "has the same case ID \"" + film.case_id + "\" as " + it->second +
                                     "; outputs would collide (rename one)");
  }
}

std::vector<FilmInput> shard_of(const std::vector<FilmInput>& films, int64_t index, int64_t count) {
  std::vector<FilmInput> mine;
  for (size_t i = static_cast<size_t>(index); i < films.size(); i += static_cast<size_t>(count)) mine.push_back(films[i]);
  return mine;
}

}  // namespace seg::io
