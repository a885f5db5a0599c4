/* device_cpu.h: the built-in cpu device: OpenBLAS (single-threaded) and the CPU kernels driven
 * by the device's own thread pool. Registered as the built-in device plugin "cpu". */
#ifndef HC_DEVICE_CPU_H
#define HC_DEVICE_CPU_H

#include "hc/hc_device.h"
#include "hc/hc_plugin.h"

const hc_plugin_desc *hc_cpu_device_descriptor(void);
HC_API hc_status hc_cpu_device_create(const hc_device_config *cfg, hc_device **out);

#endif
