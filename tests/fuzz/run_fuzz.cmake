# One bounded fuzz run, for CTest (see CMakeLists.txt here):
#   cmake -DFUZZER=EXE -DSEEDS=DIR -DWORK=DIR -DSECONDS=N -P run_fuzz.cmake
# The seeds are copied to WORK/corpus first, since libFuzzer adds the
# inputs it finds to the corpus folder it is given.
foreach(var FUZZER SEEDS WORK SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzz.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
file(GLOB seeds "${SEEDS}/*")
if(NOT seeds)
  message(FATAL_ERROR "no seed files in ${SEEDS}")
endif()
file(COPY ${seeds} DESTINATION "${WORK}/corpus")

# -timeout: an input that takes 10 s counts as a hang, and fails the run.
execute_process(COMMAND "${FUZZER}" -max_total_time=${SECONDS} -rss_limit_mb=2048
                        -timeout=10 -print_final_stats=1
                        "-artifact_prefix=${WORK}/artifacts/" "${WORK}/corpus"
                RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${status}); the failing input is in ${WORK}/artifacts/")
endif()
