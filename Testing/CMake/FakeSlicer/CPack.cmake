file(APPEND "${CMAKE_BINARY_DIR}/slicer_calls.txt" "cpack ${PROJECT_NAME}\n")
