/*
 * A C program against libalexnet.so (include/alexnet.h): runs the tv-mini fixture batch and compares
 * the logits with a reference (the NativeAOT CLI's logits, which the test command has just checked
 * against PyTorch's logits_eval within 1e-4), checks the errors of
 * bad arguments, and runs two sessions on two threads at once (each must give the single-thread logits).
 *   alexnet_sample WEIGHTS INPUT.f32 EXPECTED.f32
 * Exit 0 when every check passes.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alexnet.h"

static float *read_floats(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(1); }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *data = malloc((size_t)bytes);
    if (!data || fread(data, 1, (size_t)bytes, f) != (size_t)bytes) { fprintf(stderr, "cannot read %s\n", path); exit(1); }
    fclose(f);
    *count = (size_t)bytes / sizeof(float);
    return data;
}

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL: " __VA_ARGS__); fprintf(stderr, "\n"); failures++; } } while (0)

struct job { const char *weights; const float *input; size_t input_len; float *output; size_t output_len; int status; };

static void *run_job(void *arg)
{
    struct job *j = arg;
    alexnet_session *s = NULL;
    j->status = alexnet_session_create("tv-mini", j->weights, 4, 1, &s);
    if (j->status != ALEXNET_OK) return NULL;
    for (int repeat = 0; repeat < 20 && j->status == ALEXNET_OK; repeat++)
        j->status = alexnet_session_run(s, j->input, j->input_len, 4, j->output, j->output_len, 1);
    alexnet_session_destroy(s);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: %s WEIGHTS INPUT.f32 EXPECTED.f32\n", argv[0]); return 2; }
    size_t input_len, expected_len;
    float *input = read_floats(argv[2], &input_len);
    float *expected = read_floats(argv[3], &expected_len);

    alexnet_session *s = NULL;
    int st = alexnet_session_create("tv-mini", argv[1], 4, 0, &s);
    CHECK(st == ALEXNET_OK, "create: %d %s", st, alexnet_last_error());
    if (st != ALEXNET_OK) return 1;
    int c, h, w, classes;
    alexnet_session_shape(s, &c, &h, &w, &classes);
    CHECK(c == 3 && h == 224 && w == 224 && classes == 10, "shape %dx%dx%d, %d classes", c, h, w, classes);
    printf("libalexnet: ISA path %s, tv-mini %dx%dx%d -> %d\n", alexnet_isa_path(), c, h, w, classes);

    float logits[40];
    st = alexnet_session_run(s, input, input_len, 4, logits, 40, 1);
    CHECK(st == ALEXNET_OK, "run: %d %s", st, alexnet_last_error());
    double worst = 0;
    for (int i = 0; i < 40 && i < (int)expected_len; i++) worst = fmax(worst, fabs(logits[i] - expected[i]));
    printf("largest |logit - reference| = %.3g\n", worst);
    CHECK(expected_len == 40 && worst <= 1e-4, "logits differ from the reference by %g", worst);

    /* Errors are statuses with messages, never crashes. */
    CHECK(alexnet_session_run(s, input, input_len - 1, 4, logits, 40, 1) == ALEXNET_INVALID_ARGUMENT, "short input accepted");
    printf("short input: %s\n", alexnet_last_error());
    CHECK(alexnet_session_run(s, input, input_len, 5, logits, 40, 1) == ALEXNET_INVALID_ARGUMENT, "batch 5 accepted by a max-batch-4 session");
    CHECK(alexnet_session_run(NULL, input, input_len, 4, logits, 40, 1) == ALEXNET_INVALID_ARGUMENT, "null session accepted");
    float kept = input[7];
    input[7] = NAN;
    CHECK(alexnet_session_run(s, input, input_len, 4, logits, 40, 1) == ALEXNET_INVALID_ARGUMENT, "NaN input accepted");
    printf("NaN input: %s\n", alexnet_last_error());
    input[7] = kept;
    alexnet_session *bad = NULL;
    CHECK(alexnet_session_create("no-such-model", argv[1], 1, 1, &bad) == ALEXNET_NOT_FOUND && bad == NULL, "unknown model accepted");
    printf("unknown model: %s\n", alexnet_last_error());
    CHECK(alexnet_session_create("tv-mini", "/nonexistent/w.safetensors", 1, 1, &bad) == ALEXNET_NOT_FOUND, "missing file accepted");
    CHECK(alexnet_session_create("paper-mini", argv[1], 1, 1, &bad) == ALEXNET_BAD_WEIGHTS, "tv-mini weights accepted for paper-mini");
    printf("mismatched weights: %.80s...\n", alexnet_last_error());
    alexnet_session_destroy(s);

    /* Two sessions on two threads at once give the single-thread logits. */
    float out[2][40];
    struct job jobs[2];
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) {
        jobs[t] = (struct job){ argv[1], input, input_len, out[t], 40, -1 };
        pthread_create(&threads[t], NULL, run_job, &jobs[t]);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(threads[t], NULL);
        CHECK(jobs[t].status == ALEXNET_OK, "thread %d: status %d", t, jobs[t].status);
        CHECK(memcmp(out[t], logits, sizeof logits) == 0, "thread %d: logits differ from the single-thread run", t);
    }

    if (failures == 0) printf("alexnet_sample: all checks passed\n");
    free(input);
    free(expected);
    return failures == 0 ? 0 : 1;
}
