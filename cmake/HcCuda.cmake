# HcCuda.cmake: finds nvcc, the CUDA runtime and cuBLAS once for every CUDA target of the build (the
# cuda device plugin, the quant plugins' CUDA kernels) and says clearly why CUDA parts are skipped.
# Sets HC_CUDA_FOUND, and hc_cuda_target(TARGET) gives a target the shared CUDA settings.
set(HC_CUDA_FOUND OFF)
if(NOT HC_WITH_CUDA)
  message(STATUS "CUDA parts skipped: HC_WITH_CUDA is OFF")
  return()
endif()

# The architectures: an explicit -DCMAKE_CUDA_ARCHITECTURES (or the CUDAARCHS environment variable)
# wins; otherwise HC_CUDA_ARCHITECTURES: Turing as machine code plus compute_75 PTX, Ampere, Ada and
# Hopper (H100/H200, sm_90) as machine code and compute_90 PTX that Blackwell compiles at load time.
# "native" works only where a GPU is visible at configure time (pass it explicitly there).
if(DEFINED CMAKE_CUDA_ARCHITECTURES OR DEFINED ENV{CUDAARCHS})
  set(hc_cuda_arch_explicit ON)
else()
  set(hc_cuda_arch_explicit OFF)
endif()
set(HC_CUDA_ARCHITECTURES "75;86-real;89-real;90" CACHE STRING
    "CUDA architectures of the CUDA targets when CMAKE_CUDA_ARCHITECTURES is not given")

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "CUDA parts skipped: no working CUDA compiler (nvcc) was found "
                 "(put it on PATH or set CUDACXX, e.g. /usr/local/cuda/bin/nvcc)")
  return()
endif()
if(NOT hc_cuda_arch_explicit)
  set(CMAKE_CUDA_ARCHITECTURES "${HC_CUDA_ARCHITECTURES}")
endif()
enable_language(CUDA)
find_package(CUDAToolkit)
if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cudart)
  message(WARNING "CUDA parts skipped: nvcc ${CMAKE_CUDA_COMPILER_VERSION} works but the CUDA runtime library "
                  "(libcudart) was not found; install the CUDA toolkit's libraries or set CUDAToolkit_ROOT")
  return()
endif()
if(NOT TARGET CUDA::cublas)
  message(WARNING "CUDA parts skipped: nvcc ${CMAKE_CUDA_COMPILER_VERSION} and libcudart were found but cuBLAS "
                  "(libcublas) was not, in ${CUDAToolkit_LIBRARY_DIR}; install it (e.g. the libcublas-dev-* "
                  "package of the CUDA repository) or set CUDAToolkit_ROOT")
  return()
endif()
set(HC_CUDA_FOUND ON)
set(HC_CUDA_ARCHS_USED "${CMAKE_CUDA_ARCHITECTURES}")
if(hc_cuda_arch_explicit)
  set(hc_arch_from "as given")
else()
  set(hc_arch_from "from HC_CUDA_ARCHITECTURES")
endif()
message(STATUS "CUDA: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${HC_CUDA_ARCHS_USED} (${hc_arch_from}), "
               "libraries in ${CUDAToolkit_LIBRARY_DIR}")

# The project's warning and sanitizer options are gcc's and apply to C only (the top CMakeLists);
# ASan's runtime comes with the executable that loads the library.
function(hc_cuda_target target)
  set_target_properties(${target} PROPERTIES
    CUDA_ARCHITECTURES "${HC_CUDA_ARCHS_USED}"
    CUDA_STANDARD 17
    CUDA_STANDARD_REQUIRED ON
    CUDA_RUNTIME_LIBRARY Shared
    CUDA_VISIBILITY_PRESET hidden
    BUILD_RPATH "${CMAKE_BINARY_DIR}/lib;${CUDAToolkit_LIBRARY_DIR}")
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>)
  # never unloaded by dlclose: cudart and cuBLAS keep process-wide state (and, with a driver,
  # threads) that must not disappear under the program; it also keeps their allocations reachable
  target_link_options(${target} PRIVATE "LINKER:-z,nodelete")
endfunction()
