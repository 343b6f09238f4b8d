# SPDX-License-Identifier: Apache-2.0
# liboath (RFC 4226 HOTP / RFC 6238 TOTP; Debian's liboath-dev) as the imported target
# Oath::Oath. Used by the build and installed beside rxflowConfig.cmake for consumers of the
# static core library.
if(NOT TARGET Oath::Oath)
  find_path(OATH_INCLUDE_DIR liboath/oath.h)
  find_library(OATH_LIBRARY oath)
  if(NOT OATH_INCLUDE_DIR OR NOT OATH_LIBRARY)
    message(FATAL_ERROR "RxFlow needs liboath (Debian: liboath-dev) for EPCS two-factor "
                        "authentication; scripts/install-deps.sh installs it")
  endif()
  add_library(Oath::Oath UNKNOWN IMPORTED)
  set_target_properties(Oath::Oath PROPERTIES IMPORTED_LOCATION "${OATH_LIBRARY}"
                                              INTERFACE_INCLUDE_DIRECTORIES "${OATH_INCLUDE_DIR}")
endif()
