# HcSimd.cmake: the compile options of the SIMD kernel files (*_avx2.c, *_avx512.c), each dispatched at
# run time: their instruction sets, and in the fuzz build (HC_FUZZ) -O1 and no UBSan.
# hc_simd_sources(ISA opt... FILES file...) gives those files those options.
set(HC_SIMD_AVX2 -mavx2 -mfma -mf16c)
set(HC_SIMD_AVX512 ${HC_SIMD_AVX2} -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mgfni)

function(hc_simd_sources)
  cmake_parse_arguments(S "" "" "ISA;FILES" ${ARGN})
  set(opts ${S_ISA})
  if(HC_FUZZ)
    # The harnesses feed file bytes, not kernel data: ASan and coverage stay on the kernels, at -O1 and
    # without UBSan, which beside ASan at -O2 made clang take 80% of the fuzz build on these few files
    # (qrtn_avx2.c 103 s, qrtn_batch_avx512.c 68 s; 19 s and 16 s so). The CUnit suites run these
    # kernels under UBSan (HC_SANITIZE).
    list(APPEND opts -O1 -fno-sanitize=undefined)
  endif()
  set_source_files_properties(${S_FILES} PROPERTIES COMPILE_OPTIONS "${opts}")
endfunction()
