/* cuDNN's entry points, loaded by cudnn_load.cu (dlopen), for
 * attention_cudnn.cu's graphs (and the emulation's test of its
 * stand-in).  Only files built with cuDNN's headers include this: without
 * them (DSK_NO_CUDNN) the backend builds without DSK_CUDA_ATTN=cudnn. */
#ifndef DSK_CUDA_CUDNN_API_CUH
#define DSK_CUDA_CUDNN_API_CUH

#include <cudnn_graph.h>

#include "cuda_internal.cuh"

typedef struct dsk_cudnn_api {
    int loaded;
    size_t (*GetVersion)(void);
    cudnnStatus_t (*Create)(cudnnHandle_t *);
    cudnnStatus_t (*Destroy)(cudnnHandle_t);
    cudnnStatus_t (*SetStream)(cudnnHandle_t, cudaStream_t);
    const char *(*GetErrorString)(cudnnStatus_t);
    void (*GetLastErrorString)(char *, size_t);
    cudnnStatus_t (*CreateDescriptor)(cudnnBackendDescriptorType_t, cudnnBackendDescriptor_t *);
    cudnnStatus_t (*DestroyDescriptor)(cudnnBackendDescriptor_t);
    cudnnStatus_t (*Finalize)(cudnnBackendDescriptor_t);
    cudnnStatus_t (*SetAttribute)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t, cudnnBackendAttributeType_t,
                                  int64_t, const void *);
    cudnnStatus_t (*GetAttribute)(cudnnBackendDescriptor_t const, cudnnBackendAttributeName_t,
                                  cudnnBackendAttributeType_t, int64_t, int64_t *, void *);
    cudnnStatus_t (*Execute)(cudnnHandle_t, cudnnBackendDescriptor_t, cudnnBackendDescriptor_t);
} dsk_cudnn_api;
extern dsk_cudnn_api dsk_cudnn;

#endif
