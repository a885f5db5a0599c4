/* device_open.h: the registry and a device as the device tools open them (hc-compare-devices,
 * hc-bench-device-gemv): the default plugins, a plugin folder's first when one is given. */
#ifndef HC_BENCH_DEVICE_OPEN_H
#define HC_BENCH_DEVICE_OPEN_H

#include "hc/hc_device.h"
#include "registry.h"

/* The default registry; with plugin_dir (e.g. build/cuda-emu/plugins: the cuda device and rtn/gptq
 * kernels on the CPU emulator), that folder's plugins first, those of the default folders with the
 * same names then being refused (recorded, not fatal). */
hc_status hc_bench_registry(const char *plugin_dir, hc_registry **r);

/* Device plugin `name` of r, probed and created with `threads` host threads. */
hc_status hc_bench_device(hc_registry *r, const char *name, int threads, hc_device **out);

#endif
