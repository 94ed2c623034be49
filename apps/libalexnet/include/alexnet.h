/*
 * alexnet.h: the C ABI of libalexnet.so (AlexNet.Aot compiled with NativeAOT).
 *
 * A session binds one compiled-in model (see `alexnet info`) to a weights file and owns its activation
 * arena and threads. Thread safety: separate sessions may run at the same time on different threads;
 * one session runs one batch at a time (a second concurrent call on the same session fails with
 * ALEXNET_BUSY instead of corrupting anything). Every function returns a status; on failure,
 * alexnet_last_error() describes it.
 */
#ifndef ALEXNET_H
#define ALEXNET_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct alexnet_session alexnet_session;

enum alexnet_status {
    ALEXNET_OK = 0,
    ALEXNET_INVALID_ARGUMENT = 1, /* a null pointer, a wrong length, a batch out of range, a NaN or infinite input */
    ALEXNET_NOT_FOUND = 2,        /* no such model, or the weights file does not exist */
    ALEXNET_BAD_WEIGHTS = 3,      /* the weights file is malformed or does not fit the model */
    ALEXNET_BUSY = 4,             /* the session is running a batch on another thread */
    ALEXNET_INTERNAL = 5          /* anything else (out of memory, ...) */
};

/* Creates a session for `model` (e.g. "alexnet-torchvision") with the weights in `weights_path`
 * (safetensors, PyTorch .pth or ONNX, told apart by content), for batches of up to `max_batch` images, on `threads` threads
 * (0: one per processor). On success *out receives the session. */
int alexnet_session_create(const char *model, const char *weights_path, int max_batch, int threads,
                           alexnet_session **out);

/* The model's input shape (channels, height, width) and number of classes. */
int alexnet_session_shape(const alexnet_session *session, int *channels, int *height, int *width, int *classes);

/* Runs `batch` images: `input` holds batch*C*H*W floats (NCHW), `output` receives batch*classes floats:
 * probabilities when the model ends in softmax and `logits` is 0, else the last layer's raw outputs.
 * Lengths are in floats and are checked. No allocation after the session's first call. */
int alexnet_session_run(alexnet_session *session, const float *input, size_t input_length, int batch,
                        float *output, size_t output_length, int logits);

/* Frees the session (null is ignored). */
void alexnet_session_destroy(alexnet_session *session);

/* The last error on this thread, UTF-8; valid until this thread's next call into the library. */
const char *alexnet_last_error(void);

/* The instruction-set path the kernels take: "avx512", "avx2", "sse", "neon" or "scalar". */
const char *alexnet_isa_path(void);

#ifdef __cplusplus
}
#endif

#endif
