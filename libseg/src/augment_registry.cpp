// The registered augmentations, in the order a training step draws and applies them: the
// geometric ones first (gathered into one warp, then a padding is drawn), then those of the
// patient (opacities, devices), then exposure, processing and the detector's texture. A new
// augmentation is its own source file defining <name>_augmentation(), declared and listed here.
#include <seg/augment_pipeline.h>
#include <seg/error.h>

namespace seg {

Augmentation scale_augmentation();
Augmentation zoom_augmentation();
Augmentation rotation_augmentation();
Augmentation elastic_augmentation();
Augmentation opacity_augmentation();
Augmentation devices_augmentation();
Augmentation intensity_augmentation();
Augmentation processing_augmentation();
Augmentation texture_augmentation();
Augmentation invert_augmentation();

const std::vector<Augmentation>& augmentations() {
  static const std::vector<Augmentation> registered = [] {
    std::vector<Augmentation> all{scale_augmentation(),   zoom_augmentation(),      rotation_augmentation(),
                                  elastic_augmentation(), opacity_augmentation(),   devices_augmentation(),
                                  intensity_augmentation(), processing_augmentation(), texture_augmentation(),
                                  invert_augmentation()};
    // The pipeline samples the geometric ones as one warp before the others act.
    for (size_t k = 1; k < all.size(); ++k)
      if (all[k].geometric && !all[k - 1].geometric)
        throw Error("augmentations", "geometric augmentation \"" + all[k].name + "\" is listed after an image one");
    return all;
  }();
  return registered;
}

}  // namespace seg
