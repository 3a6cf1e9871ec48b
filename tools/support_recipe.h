#pragma once
// The options that override a recipe's keys, shared by seg-train and seg-augment: each option
// names one recipe key, --help shows the recipe's value as its default, and what the command
// line gave becomes a JSON object of recipe keys laid over the recipe (seg::recipe_stages).
#include <seg/recipe.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace seg::tools {

// A CLI11 check that refuses "nan", "inf" and numbers too large for a double.
CLI::Validator finite_number();

class RecipeOptions {
 public:
  // An option for recipe key `key` ("lr", "augmentation.zoom"); `aliases` are further names,
  // hidden from --help.
  template <class T>
  void add(CLI::App& app, const std::string& flag, const std::string& key, const std::string& help,
           const std::vector<std::string>& aliases = {}) {
    auto value = std::make_shared<T>();
    Entry entry{key, flag, {app.add_option(flag, *value, help)}, [value] { return nlohmann::json(*value); }};
    for (const auto& alias : aliases) entry.options.push_back(app.add_option(alias, *value)->group(""));
    // NaN and infinity have no JSON form: laid over the recipe they would read as absent.
    if constexpr (std::is_floating_point_v<T>)
      for (auto* option : entry.options) option->check(finite_number());
    entries_.push_back(std::move(entry));
  }
  // --augment-<name> for every registered augmentation; with `short_aliases`, --<name> too.
  void add_augmentations(CLI::App& app, bool short_aliases = false);

  // The recipe keys the command line gave, as a JSON object ({"augmentation": {"zoom": 1}}).
  nlohmann::json given() const;
  std::vector<std::string> given_keys() const;
  // The option of a recipe key ("--epochs" for "epochs"); the key itself for one without.
  std::string flag_of(const std::string& key) const;
  // --help shows these values as the options' defaults.
  void show_defaults(const Recipe& recipe);

 private:
  struct Entry {
    std::string key, flag;
    std::vector<CLI::Option*> options;
    std::function<nlohmann::json()> value;
    bool given() const;
  };
  std::vector<Entry> entries_;
};

// The keys of a JSON object of recipe keys, nested ones as "validation.split".
std::vector<std::string> recipe_keys(const nlohmann::json& keys, const std::string& prefix = "");

// A recipe problem in the command line's words: when it concerns a key the command line gave
// (`given`) or a run setting (`run_flag`: its option; empty for a recipe key), a usage error
// naming the options; otherwise the recipe file's values are at fault, and it names the file.
[[noreturn]] void report_invalid(const InvalidOption& problem, const RecipeOptions& options,
                                 const std::vector<std::string>& given,
                                 const std::function<std::string(const std::string&)>& run_flag,
                                 const std::string& recipe_source);

// The stages of `recipe` with the command line's keys (and `more`, a JSON object of keys the
// tool sets itself) laid over each, checked: bad values are reported as report_invalid says.
std::vector<Recipe> recipe_with_options(const RecipeText& recipe, const RecipeOptions& options,
                                        const nlohmann::json& more = nlohmann::json::object());

}  // namespace seg::tools
