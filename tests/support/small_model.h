#pragma once
// A small untrained model (fcn, 3 classes, 32 x 32, dataset normalisation) for model-file tests.
#include <seg/model_file.h>
#include <seg/models.h>
#include <torch/torch.h>

#include <cstdint>

namespace seg::testing {

inline seg::Model small_model(uint64_t seed) {
  torch::manual_seed(seed);
  seg::Model m;
  m.info.network = {"fcn", 1, 3};
  m.info.classes = seg::ClassTable::numbered(3);
  m.info.input_size = {32, 32};
  m.info.normalization = {"dataset", 100.0, 20.0};
  m.info.provenance_json = R"({"epochs_done": 7})";
  m.net = seg::make_network(m.info.network);
  m.net->eval();
  return m;
}

}  // namespace seg::testing
