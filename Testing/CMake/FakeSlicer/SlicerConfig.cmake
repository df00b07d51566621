# A stand-in for Slicer's CMake package, used only by Testing/Python/test_cmake_configure.py.
# It lets `cmake` configure the extension without a Slicer build: the Slicer/CTK macros the extension
# calls are defined here with the same argument names; each checks that the files it is given exist
# and records the call in ${CMAKE_BINARY_DIR}/slicer_calls.txt for the test to read.
set(Slicer_FOUND TRUE)
set(Slicer_USE_FILE "${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake")
set(Slicer_EXTENSION_GENERATE_CONFIG "${CMAKE_CURRENT_LIST_DIR}/GenerateConfig.cmake")
set(Slicer_EXTENSION_CPACK "${CMAKE_CURRENT_LIST_DIR}/CPack.cmake")
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-5.13/qt-scripted-modules")
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-5.13/qt-scripted-modules")
file(WRITE "${CMAKE_BINARY_DIR}/slicer_calls.txt" "")
