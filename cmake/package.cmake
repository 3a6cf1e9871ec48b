# `cpack -G DEB` in the build folder (or `cmake --build build --target package`) makes
# segsuite_<version>_amd64.deb of everything `cmake --install` lays out, under /usr.
set(CPACK_PACKAGE_NAME segsuite)
set(CPACK_PACKAGE_VENDOR "segsuite")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "command-line tools for multi-label segmentation of radiographs")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "Small tools over one library that train and run segmentation networks on chest radiographs "
  "and other 2D medical images: seg-convert, seg-inspect, seg-augment, seg-weights, seg-train, "
  "seg-segment and seg-evaluate, with two models trained on JSRT (lungs, heart, clavicles), "
  "found by name (seg-segment --model jsrt-fast). Also the static libraries, headers and CMake "
  "package (find_package(segsuite)) for building against them.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(SEG_PACKAGE_MAINTAINER "segsuite maintainers <segsuite-maintainers@localhost>"
    CACHE STRING "The .deb's Maintainer field")
set(CPACK_PACKAGE_CONTACT "${SEG_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SEG_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# Depends: the packages of the shared libraries the tools load, as dpkg-shlibdeps finds them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Building against the installed libraries needs the development packages as well.
if(SEG_WITH_IMAGE_IO)
  set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libtorch-dev, libopencv-dev, libinsighttoolkit5-dev, zlib1g-dev")
else()
  set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libtorch-dev")
endif()
include(CPack)
