# MamaPackaging.cmake — CPack configuration: Debian packages from the build tree.
#
#   cmake --build build && (cd build && cpack -G DEB)
#   apt-get install ./build/mama_0.1.0_amd64.deb ./build/libmama-dev_0.1.0_all.deb
#
# Two packages, from the install components:
#   mama         (cli) /usr/bin/mama, mama(1), bash completion; Depends: the shared libraries it
#                links (dpkg-shlibdeps when installed, else the list below, Debian 12's versions)
#   libmama-dev  (dev) the headers, the CMake package config (find_package(mama)), mama.pc;
#                Depends: libpugixml-dev; Recommends: mama (for mama_add_test())
# Set MAMA_PACKAGE_MAINTAINER to name your lab's maintainer in the packages.
set(MAMA_PACKAGE_MAINTAINER "mama maintainers <mama-maintainers@localhost>" CACHE STRING
  "The Maintainer field of the .deb packages")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mama)
set(CPACK_PACKAGE_VENDOR "mama")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# Each package's synopsis is the first line of its own description (below).
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_LIST_DIR}/MamaCPackOptions.cmake)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${MAMA_PACKAGE_MAINTAINER}")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>_<arch>.deb
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

set(CPACK_COMPONENTS_ALL dev)
if(TARGET mama_cli)
  list(APPEND CPACK_COMPONENTS_ALL cli)
endif()

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libmama-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libpugixml-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "mama")
# A description's first line is the package's synopsis; CPack indents the others.
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "stale-job guard for lab machines (header-only C++20 library)
A header-only C++20 library that claims lab machines in the mama tool's
mama.xml (or a PostgreSQL database), tells live jobs from stale ones and
releases on scope exit.

This package has the headers, the CMake package config (find_package(mama),
mama_add_test()) and the pkg-config file mama.pc.")

set(CPACK_DEBIAN_CLI_PACKAGE_NAME mama)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_CLI_DESCRIPTION
  "keep lab test machines from getting stuck behind crashed jobs
The mama command lists the machines of a test lab and their jobs, clears
stale jobs, and waits for and runs jobs on a machine, on the PHP mama tool's
mama.xml (same file, same lock) or on a PostgreSQL database.")
find_program(MAMA_DPKG_SHLIBDEPS dpkg-shlibdeps)
mark_as_advanced(MAMA_DPKG_SHLIBDEPS)
if(MAMA_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_CLI_PACKAGE_SHLIBDEPS ON)
else()
  # What dpkg-shlibdeps gives for the CLI built on Debian 12.
  set(depends "libc6 (>= 2.34), libgcc-s1 (>= 3.0), libpugixml1v5 (>= 1.6), libstdc++6 (>= 11)")
  if(TARGET mama_cli_pg)  # mama-pg, the CLI's PostgreSQL half
    string(APPEND depends ", libpq5 (>= 9.0~)")
  endif()
  set(CPACK_DEBIAN_CLI_PACKAGE_DEPENDS "${depends}")
endif()

include(CPack)
