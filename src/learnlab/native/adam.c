/* Adam (L2 weight decay, as torch.optim.Adam) over a flat float32 tensor, 16 elements at a time.
 *
 * Why not torch's fused Adam: it rounds a tensor's vector body and its scalar tail differently, so a
 * member's update would depend on where its parameters sit in the stacked [K, ...] tensor. Here the
 * tail is padded into one more 16-element block and goes through the very same code as the body, so
 * every element is updated by identical instructions wherever it is.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    float step_size, beta1, beta2, weight_decay, bias2_sqrt, eps;
} hyper;

static void __attribute__((noinline)) update16(float *restrict p, const float *restrict g, float *restrict m,
                                               float *restrict v, hyper h) {
    for (int j = 0; j < 16; j++) {
        float grad = g[j] + h.weight_decay * p[j];
        m[j] += (1.0f - h.beta1) * (grad - m[j]);
        v[j] = v[j] * h.beta2 + (1.0f - h.beta2) * grad * grad;
        p[j] -= h.step_size * m[j] / (sqrtf(v[j]) / h.bias2_sqrt + h.eps);
    }
}

void adam_step(int64_t n, float *p, const float *g, float *m, float *v, float step_size, float beta1, float beta2,
               float weight_decay, float bias2_sqrt, float eps) {
    const hyper h = {step_size, beta1, beta2, weight_decay, bias2_sqrt, eps};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) update16(p + i, g + i, m + i, v + i, h);
    if (i < n) {
        float tp[16] = {0}, tg[16] = {0}, tm[16] = {0}, tv[16] = {0};
        const size_t bytes = sizeof(float) * (size_t)(n - i);
        memcpy(tp, p + i, bytes), memcpy(tg, g + i, bytes), memcpy(tm, m + i, bytes), memcpy(tv, v + i, bytes);
        update16(tp, tg, tm, tv, h);
        memcpy(p + i, tp, bytes), memcpy(m + i, tm, bytes), memcpy(v + i, tv, bytes);
    }
}

/* One step for n tensors at once (one call from Python per training step). */
void adam_step_all(int64_t n, const int64_t *sizes, float *const *p, float *const *g, float *const *m, float *const *v,
                   float step_size, float beta1, float beta2, float weight_decay, float bias2_sqrt, float eps) {
    for (int64_t t = 0; t < n; t++)
        if (g[t]) adam_step(sizes[t], p[t], g[t], m[t], v[t], step_size, beta1, beta2, weight_decay, bias2_sqrt, eps);
}
