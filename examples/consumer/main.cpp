// segment-one MODEL FILM LABELS: segments one film with a model file and writes its label map,
// through the installed segsuite libraries.
#include <seg/error.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/predict.h>

#include <ATen/ATen.h>

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: segment-one MODEL.pth FILM LABELS.png\n";
    return 2;
  }
  try {
    const seg::Model model = seg::load_model(argv[1]);
    const seg::Image film = seg::io::read_image(argv[2]);
    const at::Tensor logits = seg::predict_logits(model, film.pixels.unsqueeze(0), at::kCPU);
    seg::Image labels = film;
    labels.pixels = seg::logits_to_labels(logits, model.info.classes)[0];
    labels.pixel_type = "uint8";
    seg::io::write_label_map(argv[3], labels);
    std::cout << "wrote " << argv[3] << " (" << labels.height() << " x " << labels.width() << ")\n";
  } catch (const std::exception& e) {  // seg::Error: bad input, named by its file
    std::cerr << "segment-one: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
