#pragma once
// The cases a run validates on, as its recipe's validation rule picks them from the data.
#include <seg/dataset.h>
#include <seg/recipe.h>

#include <string>
#include <vector>

namespace seg {

struct ValidationCases {
  std::vector<std::string> train;  // the cases trained on
  std::vector<std::string> val;    // the cases validated on; empty: no validation
  std::string source;              // where they come from: "split test", "24 held out of split train (every 6th)"
  std::string note;                // what differs from the recipe's rule, to tell the user; else empty
};

// The recipe's rule (seg::ValidationRule) on this data: a named split if the data has it; if
// not, the data's one other split (a held-out split named "val", say), else cases held out of
// the train split, with a note saying so. The same data and rule always give the same cases.
// Throws seg::Error when the train split cannot spare the cases, or the data has several
// other splits and the recipe names none of them.
ValidationCases choose_validation_cases(const Dataset& data, const Recipe& recipe);

// True when `source` (ValidationCases::source, as runs record it) names cases held out of the
// split trained on, rather than a split of their own.
bool held_out_of_training(const std::string& source);

}  // namespace seg
