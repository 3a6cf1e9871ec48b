#include <seg/viz/overlay.h>
