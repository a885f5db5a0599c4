/* qrtn_device_kernels.h: the device_kernels hook shared by the rtn and gptq plugins (the same packed
 * format): a hc_quant_cuda_kernels table for "cuda", NULL (with the reason in hc_last_error()) else. */
#ifndef HC_QRTN_DEVICE_KERNELS_H
#define HC_QRTN_DEVICE_KERNELS_H

const void *hc_qrtn_device_kernels(const void *params, const char *device_name);

#endif
