// png_info FILE.png: what a reader of the picture would see, read with libpng (the runtime's
// read_png): "WIDTH HEIGHT CHANNELS INK COLOURS", INK the share of pixels unlike the top-left
// one (the background), COLOURS the distinct pixel values. For the picture tests' shell scripts.

#include <fmt/format.h>

#include <set>
#include <string>

#include "runtime/error.h"
#include "runtime/image.h"

namespace {

std::string pixel(const stag::rt::Image& im, int64_t i) {
  auto at = im.pixels.begin() + i * im.channels;
  return std::string(at, at + im.channels);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: png_info FILE.png\n");
    return 2;
  }
  try {
    stag::rt::Image im = stag::rt::read_png(argv[1]);
    int64_t n = im.width * im.height, ink = 0;
    std::set<std::string> colours;
    for (int64_t i = 0; i < n; ++i) {
      ink += pixel(im, i) != pixel(im, 0);
      if (colours.size() < 100000) colours.insert(pixel(im, i));
    }
    fmt::print("{} {} {} {:.4f} {}\n", im.width, im.height, im.channels, n ? static_cast<double>(ink) / static_cast<double>(n) : 0.0,
               colours.size());
  } catch (const stag::rt::Error& e) {
    fmt::print(stderr, "png_info: {}\n", e.what());
    return 1;
  }
  return 0;
}
