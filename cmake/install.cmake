# What `cmake --install` lays out besides the tools, libraries and headers (installed where
# they are built): the shipped models, the recipes, and the package config that
# find_package(segsuite) reads, with the exported targets segsuite::seg, ::io and ::viz.
include(CMakePackageConfigHelpers)

# Tools find models by name in <their folder>/../share/segsuite/models (seg/model_search.h):
# the build puts the shipped models there too, so the rule holds in build/ as after install.
if(NOT CMAKE_INSTALL_BINDIR STREQUAL "bin" OR NOT CMAKE_INSTALL_DATADIR STREQUAL "share")
  message(WARNING "segsuite: the tools look for models in ../share/segsuite/models beside their own folder; "
                  "with CMAKE_INSTALL_BINDIR=${CMAKE_INSTALL_BINDIR} and CMAKE_INSTALL_DATADIR="
                  "${CMAKE_INSTALL_DATADIR} the installed ones are found only through SEG_MODEL_PATH")
endif()
file(GLOB SEG_SHIPPED_MODELS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/share/models/*.pth)
foreach(model ${SEG_SHIPPED_MODELS})
  get_filename_component(name ${model} NAME)
  configure_file(${model} ${CMAKE_BINARY_DIR}/share/segsuite/models/${name} COPYONLY)
endforeach()
install(FILES ${SEG_SHIPPED_MODELS} DESTINATION ${CMAKE_INSTALL_DATADIR}/segsuite/models)
# Recipes by name, the same way: <their folder>/../share/segsuite/recipes (seg::recipe_folder).
file(GLOB SEG_RECIPES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/share/recipes/*.json)
foreach(recipe ${SEG_RECIPES})
  get_filename_component(name ${recipe} NAME)
  configure_file(${recipe} ${CMAKE_BINARY_DIR}/share/segsuite/recipes/${name} COPYONLY)
endforeach()
install(FILES ${SEG_RECIPES} DESTINATION ${CMAKE_INSTALL_DATADIR}/segsuite/recipes)

set(SEG_CONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/segsuite)
install(EXPORT segsuiteTargets NAMESPACE segsuite:: DESTINATION ${SEG_CONFIG_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/segsuiteConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/segsuiteConfig.cmake INSTALL_DESTINATION ${SEG_CONFIG_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/segsuiteConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/segsuiteConfig.cmake ${CMAKE_BINARY_DIR}/segsuiteConfigVersion.cmake
        DESTINATION ${SEG_CONFIG_DIR})
