# SPDX-License-Identifier: Apache-2.0
# pkg-config files for C and make-based consumers: rxflow.pc (the core) and one per adapter
# component (rxflow-sqlite.pc, rxflow-postgres.pc, rxflow-kafka.pc, rxflow-http.pc,
# rxflow-pkcs11.pc), installed into <libdir>/pkgconfig. Each names its Debian dependencies by
# their own .pc files, so pkg-config walks them:
#
#   c++ -std=c++20 app.cc $(pkg-config --cflags --libs rxflow-sqlite)
#
# RxFlow's libraries are static archives unless BUILD_SHARED_LIBS is set: an archive does not
# carry its dependencies, so they are listed under Requires (plain `--libs` links them). For a
# shared build they go under Requires.private, as pkg-config intends. The C++20 requirement is
# the consumer's to state (-std=c++20 or later); Cflags does not force a language level.
if(BUILD_SHARED_LIBS)
  set(RXFLOW_PC_PRIVATE_FIELD "Requires.private")
else()
  set(RXFLOW_PC_PRIVATE_FIELD "Requires")
endif()

# rxflow_pkg_config(<file name> <library> <description>
#                   PUBLIC <pc modules...> PRIVATE <pc modules...> LIBS <extra link flags...>)
function(rxflow_pkg_config name library description)
  cmake_parse_arguments(PC "" "" "PUBLIC;PRIVATE;LIBS" ${ARGN})
  list(JOIN PC_PUBLIC " " public)
  list(JOIN PC_PRIVATE " " private)
  list(JOIN PC_LIBS " " libs)
  # Relocatable: the prefix is found from where the file is (<prefix>/<libdir>/pkgconfig), so
  # `cmake --install --prefix` anywhere, or a moved tree, needs no edit.
  file(RELATIVE_PATH up "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
  string(REGEX REPLACE "/$" "" up "${up}")
  set(text "prefix=\${pcfiledir}/${up}
exec_prefix=\${prefix}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: ${name}
Description: ${description}
Version: ${PROJECT_VERSION}
Requires: ${public}
")
  if(private)
    string(APPEND text "${RXFLOW_PC_PRIVATE_FIELD}: ${private}\n")
  endif()
  string(APPEND text "Libs: -L\${libdir} -l${library} ${libs}
Cflags: -I\${includedir}
")
  # One Requires line when both lists land in it (static archives).
  string(REPLACE "Requires: ${public}\nRequires: " "Requires: ${public} " text "${text}")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/${name}.pc "${text}")
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/pkgconfig/${name}.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()

set(RXFLOW_PC_CORE_PRIVATE absl_flat_hash_map simdjson pugixml libcrypto liboath libzstd icu-uc icu-i18n)
if(RXFLOW_WITH_LIBXML2)
  list(APPEND RXFLOW_PC_CORE_PRIVATE libxml-2.0)
endif()
rxflow_pkg_config(rxflow rxflow_core
  "RxFlow: HL7 FHIR R5 <-> NCPDP SCRIPT and the event-sourced prescription service (core)"
  PUBLIC absl_status absl_statusor absl_strings
  PRIVATE ${RXFLOW_PC_CORE_PRIVATE})
if(RXFLOW_WITH_SQLITE)
  rxflow_pkg_config(rxflow-sqlite rxflow_sqlite "RxFlow's SQLite store adapter"
    PUBLIC rxflow PRIVATE sqlite3 LIBS -pthread)
endif()
if(RXFLOW_WITH_POSTGRES)
  rxflow_pkg_config(rxflow-postgres rxflow_postgres "RxFlow's PostgreSQL store adapter (libpqxx)"
    PUBLIC rxflow PRIVATE libpqxx libpq LIBS -pthread)
endif()
if(RXFLOW_WITH_KAFKA)
  rxflow_pkg_config(rxflow-kafka rxflow_kafka "RxFlow's Kafka broker adapter (librdkafka)"
    PUBLIC rxflow PRIVATE rdkafka LIBS -pthread)
endif()
if(RXFLOW_WITH_HTTP)
  rxflow_pkg_config(rxflow-http rxflow_http
    "RxFlow's HTTP library: the ingestion API, the pharmacy transport and simulator"
    PUBLIC rxflow PRIVATE cpp-httplib libssl libcrypto zlib LIBS -pthread)
endif()
if(RXFLOW_WITH_PKCS11)
  set(RXFLOW_PC_DL "")
  foreach(lib ${CMAKE_DL_LIBS})
    list(APPEND RXFLOW_PC_DL -l${lib})
  endforeach()
  rxflow_pkg_config(rxflow-pkcs11 rxflow_pkcs11 "RxFlow's PKCS#11 token adapter"
    PUBLIC rxflow PRIVATE libcrypto LIBS ${RXFLOW_PC_DL})
endif()
