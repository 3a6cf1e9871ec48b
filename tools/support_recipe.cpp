#include "support_recipe.h"

#include <seg/augment_pipeline.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace seg::tools {

CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        return end != text.c_str() && !std::isfinite(value) ? "must be a finite number, not " + text : std::string();
      },
      "");
}

using nlohmann::json;

namespace {
json::json_pointer pointer_of(const std::string& key) {
  std::string path = "/" + key;
  std::replace(path.begin(), path.end(), '.', '/');
  return json::json_pointer(path);
}
}  // namespace

bool RecipeOptions::Entry::given() const {
  for (const auto* option : options)
    if (option->count() > 0) return true;
  return false;
}

void RecipeOptions::add_augmentations(CLI::App& app, bool short_aliases) {
  for (const auto& a : augmentations()) {
    std::vector<std::string> aliases;
    if (short_aliases) aliases.push_back("--" + a.name);
    add<double>(app, "--augment-" + a.name, "augmentation." + a.name, a.help, aliases);
  }
}

json RecipeOptions::given() const {
  json patch = json::object();
  for (const auto& e : entries_)
    if (e.given()) patch[pointer_of(e.key)] = e.value();
  return patch;
}

std::vector<std::string> RecipeOptions::given_keys() const {
  std::vector<std::string> keys;
  for (const auto& e : entries_)
    if (e.given()) keys.push_back(e.key);
  return keys;
}

std::string RecipeOptions::flag_of(const std::string& key) const {
  for (const auto& e : entries_)
    if (e.key == key) return e.flag;
  return key;
}

void RecipeOptions::show_defaults(const Recipe& recipe) {
  const json values = json::parse(recipe_to_json(recipe));
  for (auto& e : entries_) {
    const json& value = values.at(pointer_of(e.key));
    std::ostringstream text;
    if (value.is_string()) text << value.get<std::string>();
    else text << value.dump();
    e.options.front()->default_str(text.str());
  }
}

std::vector<std::string> recipe_keys(const json& keys, const std::string& prefix) {
  std::vector<std::string> flat;
  for (const auto& [key, value] : keys.items()) {
    const auto inner = value.is_object() ? recipe_keys(value, prefix + key + ".") : std::vector<std::string>{prefix + key};
    flat.insert(flat.end(), inner.begin(), inner.end());
  }
  return flat;
}

void report_invalid(const InvalidOption& problem, const RecipeOptions& options, const std::vector<std::string>& given,
                    const std::function<std::string(const std::string&)>& run_flag, const std::string& recipe_source) {
  const auto keys = problem.keys();
  // The recipe's doing only when the command line gave none of the values concerned.
  const bool from_recipe = std::none_of(keys.begin(), keys.end(), [&](const std::string& key) {
    return !run_flag(key).empty() || std::find(given.begin(), given.end(), key) != given.end();
  });
  if (from_recipe) throw Error(recipe_source, std::string(problem.what()) + "; correct the recipe, or override it with its option");
  throw UsageError(problem.message([&](const std::string& key) {
    const std::string flag = run_flag(key);
    return flag.empty() ? options.flag_of(key) : flag;
  }));
}

std::vector<Recipe> recipe_with_options(const RecipeText& recipe, const RecipeOptions& options, const json& more) {
  json patch = options.given();
  patch.merge_patch(more);
  auto stages = recipe_stages(recipe.text, recipe.source, patch.dump());
  auto given = options.given_keys();
  for (const auto& key : recipe_keys(more)) given.push_back(key);
  try {
    for (const auto& stage : stages) check_recipe(stage);
  } catch (const InvalidOption& problem) {
    report_invalid(problem, options, given, [](const std::string&) { return std::string(); }, recipe.source);
  }
  return stages;
}

}  // namespace seg::tools
