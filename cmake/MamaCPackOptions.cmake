# Read by cpack (CPACK_PROJECT_CONFIG_FILE, see MamaPackaging.cmake). Each .deb's synopsis is the
# first line of its own description: CPackDeb prepends CPACK_PACKAGE_DESCRIPTION_SUMMARY to a
# description only when the summary differs from CPack's default summary.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CPACK_DEFAULT_PACKAGE_DESCRIPTION_SUMMARY}")
