#pragma once
// The JSRT case IDs and SCR structure names, shared by the notebook and JSRT importers.
#include <string>
#include <vector>

namespace seg::io::detail {

// JPCLN001..JPCLN154 then JPCNN001..JPCNN093: the canonical order, which the notebook uses.
std::vector<std::string> jsrt_case_ids();
// The notebook's split: the first 160 cases of the canonical order are for training.
constexpr int64_t kJsrtCases = 247;
constexpr int64_t kJsrtTrainCases = 160;
// Label values 1..5 in painting order.
const std::vector<std::string>& scr_structures();  // "right_lung", "left_lung", ...

}  // namespace seg::io::detail
