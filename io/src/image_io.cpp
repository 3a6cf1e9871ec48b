#include <seg/io/image_io.h>
