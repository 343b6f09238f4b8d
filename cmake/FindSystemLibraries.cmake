# SPDX-License-Identifier: Apache-2.0
# The Debian libraries the core links that ship no CMake package, as imported targets, found by
# their header and library (not pkg-config), so that consumers of the installed package find
# them the same way: this file is installed beside rxflowConfig.cmake for the static core.
#   Oath::Oath  liboath (RFC 4226 HOTP / RFC 6238 TOTP; liboath-dev): EPCS two-factor
#   Zstd::Zstd  libzstd (Zstandard, RFC 8878; libzstd-dev): sealed PHI compressed at rest
# The cache variables are <id>_INCLUDE_DIR and <id>_LIBRARY (OATH_… as the former
# FindOath.cmake named them, so a build directory or a consumer that set them keeps working).
function(rxflow_import_library target id header library why)
  if(TARGET ${target})
    return()
  endif()
  find_path(${id}_INCLUDE_DIR ${header})
  find_library(${id}_LIBRARY ${library})
  if(NOT ${id}_INCLUDE_DIR OR NOT ${id}_LIBRARY)
    message(FATAL_ERROR "RxFlow needs ${why}; scripts/install-deps.sh installs it")
  endif()
  add_library(${target} UNKNOWN IMPORTED)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${${id}_LIBRARY}"
                                             INTERFACE_INCLUDE_DIRECTORIES "${${id}_INCLUDE_DIR}")
endfunction()

rxflow_import_library(Oath::Oath OATH liboath/oath.h oath
                      "liboath (Debian: liboath-dev) for EPCS two-factor authentication")
rxflow_import_library(Zstd::Zstd ZSTD zstd.h zstd
                      "libzstd (Debian: libzstd-dev) to compress sealed PHI at rest")
