# MamaTest.cmake — run a CTest test while holding a lab machine, for any test runner.
#
#   include(MamaTest)            # found automatically after find_package(mama)
#   mama_add_test(NAME nightly_suite MACHINE test-machine
#                 COMMAND my_tests --some-flag
#                 [JOB "nightly regression"] [TIMEOUT 600] [STATE /path/to/mama.xml]
#                 [WORKING_DIRECTORY dir])
#
# The test runs `mama [--state STATE] run MACHINE --job JOB [--timeout TIMEOUT] -- COMMAND...`:
# the machine is claimed (waiting for a running job, clearing a stale one), the command runs,
# the machine is released, and the test passes or fails with the command's exit status.
# Without STATE the CLI uses $MAMA_STATE, else $MAMA_PATH/mama.xml (/usr/share/mama/mama.xml)
# of the environment CTest runs in. JOB defaults to "ctest <NAME>". TIMEOUT is how long to wait
# for a busy machine, in seconds (the CTest property TIMEOUT still bounds the whole test).
# A first COMMAND word that names an executable target is replaced by its file, as add_test does.
#
# The mama CLI is, in order: the cache variable MAMA_EXECUTABLE; an executable target named
# mama_cli, mama-cli or mama in this build; the `mama` program installed with this package
# (<prefix>/bin). Not PATH: the PHP tool is also called `mama`. Set further test properties on
# NAME as usual (set_tests_properties).
include_guard(GLOBAL)

# A global property, not a variable: the function may be called from any directory scope.
set_property(GLOBAL PROPERTY MAMA_TEST_MODULE_DIR "${CMAKE_CURRENT_LIST_DIR}")

# Sets `out` to the mama CLI to run (a path or a $<TARGET_FILE:...> expression).
function(_mama_test_find_cli out)
  if(MAMA_EXECUTABLE)
    set(${out} "${MAMA_EXECUTABLE}" PARENT_SCOPE)
    return()
  endif()
  foreach(candidate IN ITEMS mama_cli mama-cli mama)
    if(TARGET ${candidate})
      get_target_property(type ${candidate} TYPE)
      if(type STREQUAL "EXECUTABLE")
        set(${out} "$<TARGET_FILE:${candidate}>" PARENT_SCOPE)
        return()
      endif()
    endif()
  endforeach()
  get_property(module_dir GLOBAL PROPERTY MAMA_TEST_MODULE_DIR)
  # Only beside the installed package: a `mama` on PATH may be the PHP tool, whose command
  # line differs.
  find_program(_MAMA_TEST_CLI mama
    PATHS "${module_dir}/../../../bin" NO_DEFAULT_PATH
    DOC "The mama CLI used by mama_add_test()")
  if(_MAMA_TEST_CLI)
    set(${out} "${_MAMA_TEST_CLI}" PARENT_SCOPE)
  else()
    set(${out} "" PARENT_SCOPE)
  endif()
endfunction()

function(mama_add_test)
  cmake_parse_arguments(PARSE_ARGV 0 arg ""
    "NAME;MACHINE;JOB;TIMEOUT;STATE;WORKING_DIRECTORY" "COMMAND")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "mama_add_test: unknown arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  foreach(required IN ITEMS NAME MACHINE COMMAND)
    if(NOT arg_${required})
      message(FATAL_ERROR "mama_add_test: ${required} is required, e.g. "
        "mama_add_test(NAME my_test MACHINE test-machine COMMAND my_test_program)")
    endif()
  endforeach()
  if(DEFINED arg_TIMEOUT AND NOT arg_TIMEOUT MATCHES "^[0-9]+$")
    message(FATAL_ERROR "mama_add_test(${arg_NAME}): TIMEOUT '${arg_TIMEOUT}' is not a whole "
      "number of seconds")
  endif()

  _mama_test_find_cli(cli)
  if(NOT cli)
    message(FATAL_ERROR "mama_add_test(${arg_NAME}): cannot find the mama CLI. Install it or "
      "set -DMAMA_EXECUTABLE=/path/to/mama.")
  endif()

  set(job "${arg_JOB}")
  if(job STREQUAL "")
    set(job "ctest ${arg_NAME}")
  endif()

  set(command ${arg_COMMAND})
  list(POP_FRONT command program)
  if(TARGET ${program})
    get_target_property(type ${program} TYPE)
    if(type STREQUAL "EXECUTABLE")
      set(program "$<TARGET_FILE:${program}>")
    endif()
  endif()

  set(wrapper "${cli}")
  if(arg_STATE)
    list(APPEND wrapper --state "${arg_STATE}")
  endif()
  list(APPEND wrapper run "${arg_MACHINE}" --job "${job}")
  if(DEFINED arg_TIMEOUT)
    list(APPEND wrapper --timeout "${arg_TIMEOUT}")
  endif()

  set(extra)
  if(arg_WORKING_DIRECTORY)
    set(extra WORKING_DIRECTORY "${arg_WORKING_DIRECTORY}")
  endif()
  add_test(NAME ${arg_NAME} ${extra} COMMAND ${wrapper} -- "${program}" ${command})
endfunction()

# Sets <out_var> to the mama CLI that mama_add_test() would run, or to "" when there is none.
function(mama_find_cli out_var)
  _mama_test_find_cli(cli)
  set(${out_var} "${cli}" PARENT_SCOPE)
endfunction()
