/* learnlab's fused LSTM kernel: forward and backward of K independent LSTMs, one member at a time.
 *
 * Why native code: a TinyLSTM's time step is a [B,H]@[H,4H] matmul plus a dozen elementwise ops on a few
 * kilobytes. Through PyTorch each of those ops is a dispatch and a pass over memory; here one member's
 * whole sequence runs with its weights in L1 and its activations in L2, the matmul accumulators in
 * registers, and the gate nonlinearities fused into the matmul's epilogue.
 *
 * Every member is computed by the same code whatever else is in the ensemble, so a member's result does
 * not depend on K or on which thread ran it. Members are independent, so callers split [k0, k1) ranges
 * across threads.
 *
 * Layouts (row-major, float32 unless noted), gate order (i, f, o, g) along the 4H axis:
 *   table [K][R][4H]  input pre-activations (x W_ih + biases): member k reads row rows[k, t, b]
 *   rows              int64, element (k, t, b) at k*rk + t*rt + b*rb (any strided view)
 *   w     [K][H][4H]  recurrent weights
 *   start [K]         int64, member k's first step (earlier steps are skipped, its state is zero there)
 *   saved, per member and slot (slot = t % slots; slots = T when training, 2 for inference):
 *   gates [K][slots][B][4H] activations (σi, σf, σo, tanh g), overwritten by backward with d(pre-act)
 *   cell, tcell, hid [K][slots][B][H]   c_t, tanh(c_t), h_t
 * The classifier entry points add TinyLSTM's ends: the table from an embedding and W_ih (row V is the
 * padding token: input gate CLOSED, so a zero state stays zero), each member's first step from its
 * tokens, and a linear head to one logit per sequence.
 * Compiled with -DHID=<hidden size>; HID must be a multiple of 16 (one 16-float vector).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* Subnormal floats take a slow microcode path; flushing them to zero (they are below 1.2e-38, far under
 * anything that moves a TinyLSTM) keeps every step fast. The caller's mode is restored on return. */
static unsigned flush_subnormals(void) {
    unsigned mode = _mm_getcsr();
    _mm_setcsr(mode | 0x8040); /* FTZ | DAZ */
    return mode;
}
static void restore_mode(unsigned mode) { _mm_setcsr(mode); }
#else
static unsigned flush_subnormals(void) { return 0; }
static void restore_mode(unsigned mode) { (void)mode; }
#endif

#ifndef HID
#error "compile with -DHID=<hidden size>"
#endif
#if HID % 16 != 0
#error "HID must be a multiple of 16"
#endif

#define G (4 * HID)
#define NG (G / 16)   /* vectors in a row of gates */
#define NH (HID / 16) /* vectors in a row of hidden units */

typedef float vf __attribute__((vector_size(64), aligned(4))); /* 16 floats, any float alignment */
typedef int32_t vi __attribute__((vector_size(64), aligned(4)));

static inline vf splat(float x) { return (vf){0} + x; }

static inline vf vselect(vi mask, vf yes, vf no) { return (vf)(((vi)yes & mask) | ((vi)no & ~mask)); }

/* e^x for x in [-87.3, 88.3] (clamped), Cephes' expf polynomial: relative error ~2e-7. */
static inline vf vexp(vf x) {
    const vf hi = splat(88.3762626647949f), lo = splat(-87.3365447505531f);
    x = vselect(x > hi, hi, x);
    x = vselect(x < lo, lo, x);
    const vf magic = splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    vf n = (x * splat(1.44269504088896341f) + magic) - magic;
    vf r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
    vf p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * r * r + r + splat(1.0f);
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}

/* σ(x), exactly 0 below -80 (a CLOSED gate leaves a zero state exactly zero) and exactly 1 above 80. */
static inline vf vsigmoid(vf x) {
    vf s = splat(1.0f) / (splat(1.0f) + vexp(-x));
    return vselect(x < splat(-80.0f), splat(0.0f), s);
}

static inline vf vtanh(vf x) { return splat(2.0f) * vsigmoid(splat(2.0f) * x) - splat(1.0f); }

static inline vf load(const float *p) { return *(const vf *)p; }

/* The sum of a vector's lanes, by halving (a fixed order: the same for every member). */
static inline float hsum(vf x) {
    float lanes[16];
    memcpy(lanes, &x, sizeof lanes);
    for (int half = 8; half > 0; half /= 2)
        for (int l = 0; l < half; l++) lanes[l] += lanes[l + half];
    return lanes[0];
}
static inline void store(float *p, vf v) { *(vf *)p = v; }

/* acc[r] = x[r] + h[r] @ w for `rows` (1 or 2) rows; w [HID][G]. */
static inline void gates_matmul(vf acc[2][NG], const float *h0, const float *h1, const float *w, int rows) {
    for (int j = 0; j < HID; j++) {
        const float *wj = w + j * G;
        vf a0 = splat(h0[j]);
        if (rows == 2) {
            vf a1 = splat(h1[j]);
            for (int v = 0; v < NG; v++) {
                vf wv = load(wj + 16 * v);
                acc[0][v] += a0 * wv;
                acc[1][v] += a1 * wv;
            }
        } else {
            for (int v = 0; v < NG; v++) acc[0][v] += a0 * load(wj + 16 * v);
        }
    }
}

/* One row's cell update from its pre-activations: writes gates, c, tanh c, h. */
static inline void cell_update(vf pre[NG], const float *c_prev, float *gates, float *c, float *tc, float *h) {
    for (int v = 0; v < 3 * NH; v++) store(gates + 16 * v, vsigmoid(pre[v])); /* i, f, o */
    for (int v = 3 * NH; v < NG; v++) store(gates + 16 * v, vtanh(pre[v]));   /* g */
    for (int v = 0; v < NH; v++) {
        vf i = load(gates + 16 * v), f = load(gates + HID + 16 * v);
        vf o = load(gates + 2 * HID + 16 * v), g = load(gates + 3 * HID + 16 * v);
        vf cv = i * g;
        if (c_prev) cv += f * load(c_prev + 16 * v);
        vf t = vtanh(cv);
        store(c + 16 * v, cv);
        store(tc + 16 * v, t);
        store(h + 16 * v, o * t);
    }
}

typedef struct {
    int64_t T, B, R, slots, rk, rt, rb;
    const int64_t *rows;
    float *table; /* read by the recurrence; written by classifier_forward */
    const float *w;
    int64_t *start; /* written by classifier_forward */
    float *gates, *cell, *tcell, *hid, *h_last;
} lstm_problem;

static void forward_member(const lstm_problem *p, int64_t k) {
    const int64_t s = p->start[k], T = p->T, B = p->B, slots = p->slots;
    const float *tab = p->table + k * p->R * G, *wk = p->w + k * HID * G;
    float *out = p->h_last + k * B * HID;
    if (s >= T) {
        memset(out, 0, sizeof(float) * B * HID);
        return;
    }
    for (int64_t t = s; t < T; t++) {
        const int64_t slot = t % slots, prev = t > 0 ? (t - 1) % slots : 0;
        const int64_t *row = p->rows + k * p->rk + t * p->rt;
        float *gt = p->gates + (k * slots + slot) * B * G;
        float *ct = p->cell + (k * slots + slot) * B * HID, *tct = p->tcell + (k * slots + slot) * B * HID;
        float *ht = p->hid + (k * slots + slot) * B * HID;
        const float *cp = p->cell + (k * slots + prev) * B * HID, *hp = p->hid + (k * slots + prev) * B * HID;
        for (int64_t b = 0; b < B; b += 2) {
            const int n = (B - b >= 2) ? 2 : 1;
            vf acc[2][NG];
            for (int r = 0; r < n; r++)
                for (int v = 0; v < NG; v++) acc[r][v] = load(tab + row[(b + r) * p->rb] * G + 16 * v);
            if (t > s) gates_matmul(acc, hp + b * HID, hp + (b + n - 1) * HID, wk, n);
            for (int r = 0; r < n; r++) {
                const int64_t o = (b + r) * HID;
                cell_update(acc[r], t > s ? cp + o : NULL, gt + (b + r) * G, ct + o, tct + o, ht + o);
            }
        }
    }
    memcpy(out, p->hid + (k * slots + (T - 1) % slots) * B * HID, sizeof(float) * B * HID);
}

void lstm_forward(const lstm_problem *p, int64_t k0, int64_t k1) {
    const unsigned mode = flush_subnormals();
    for (int64_t k = k0; k < k1; k++) forward_member(p, k);
    restore_mode(mode);
}

/* dh[r] = d[r] @ w^T for up to 4 rows; wt [G][HID] is w transposed. */
static inline void hidden_grad(const float *d, int64_t n, const float *wt, float *dh) {
    vf acc[4][NH];
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < NH; v++) acc[r][v] = splat(0.0f);
    for (int g = 0; g < G; g++) {
        vf wv[NH];
        for (int v = 0; v < NH; v++) wv[v] = load(wt + g * HID + 16 * v);
        for (int r = 0; r < 4; r++) {
            if (r >= n) break;
            vf x = splat(d[r * G + g]);
            for (int v = 0; v < NH; v++) acc[r][v] += x * wv[v];
        }
    }
    for (int r = 0; r < n; r++)
        for (int v = 0; v < NH; v++) store(dh + r * HID + 16 * v, acc[r][v]);
}

/* Member k's gradients from dh_k [B][H] (consumed): dtable (zero-initialised, accumulates) and dw. */
static void backward_member(const lstm_problem *p, int64_t k, float *dh, float *dtable, float *dw, float *scratch) {
    const int64_t s = p->start[k], T = p->T, B = p->B;
    float *dwk = dw + k * HID * G;
    memset(dwk, 0, sizeof(float) * HID * G);
    if (s >= T) return;
    const float *wk = p->w + k * HID * G;
    float *wt = scratch, *dc = scratch + G * HID;
    for (int j = 0; j < HID; j++)
        for (int g = 0; g < G; g++) wt[g * HID + j] = wk[j * G + g];
    memset(dc, 0, sizeof(float) * B * HID);
    float *dtab = dtable + k * p->R * G;
    const vf one = splat(1.0f);
    for (int64_t t = T - 1; t >= s; t--) {
        const int64_t base = (k * T + t) * B;
        const int64_t *row = p->rows + k * p->rk + t * p->rt;
        float *gt = p->gates + base * G; /* becomes d(pre-activation) */
        const float *tct = p->tcell + base * HID, *cp = t > s ? p->cell + (base - B) * HID : NULL;
        for (int64_t b = 0; b < B; b++) {
            float *gr = gt + b * G;
            for (int v = 0; v < NH; v++) {
                const int64_t o = b * HID + 16 * v;
                vf i = load(gr + 16 * v), f = load(gr + HID + 16 * v);
                vf og = load(gr + 2 * HID + 16 * v), g = load(gr + 3 * HID + 16 * v);
                vf tc = load(tct + o), dhv = load(dh + o);
                vf dcv = load(dc + o) + dhv * og * (one - tc * tc);
                vf c_prev = cp ? load(cp + o) : splat(0.0f);
                store(gr + 16 * v, dcv * g * i * (one - i));
                store(gr + HID + 16 * v, dcv * c_prev * f * (one - f));
                store(gr + 2 * HID + 16 * v, dhv * tc * og * (one - og));
                store(gr + 3 * HID + 16 * v, dcv * i * (one - g * g));
                store(dc + o, dcv * f);
            }
            float *dst = dtab + row[b * p->rb] * G;
            for (int v = 0; v < NG; v++) store(dst + 16 * v, load(dst + 16 * v) + load(gr + 16 * v));
        }
        if (t > s)
            for (int64_t b = 0; b < B; b += 4) hidden_grad(gt + b * G, B - b < 4 ? B - b : 4, wt, dh + b * HID);
    }
    /* dW = sum over steps t > s of h_{t-1}^T d_t, two hidden units at a time */
    for (int j = 0; j < HID; j += 2) {
        vf acc[2][NG];
        for (int r = 0; r < 2; r++)
            for (int v = 0; v < NG; v++) acc[r][v] = splat(0.0f);
        for (int64_t t = s + 1; t < T; t++) {
            const float *hp = p->hid + (k * T + t - 1) * B * HID, *d = p->gates + (k * T + t) * B * G;
            for (int64_t b = 0; b < B; b++) {
                vf a0 = splat(hp[b * HID + j]), a1 = splat(hp[b * HID + j + 1]);
                for (int v = 0; v < NG; v++) {
                    vf dv = load(d + b * G + 16 * v);
                    acc[0][v] += a0 * dv;
                    acc[1][v] += a1 * dv;
                }
            }
        }
        for (int r = 0; r < 2; r++)
            for (int v = 0; v < NG; v++) store(dwk + (j + r) * G + 16 * v, acc[r][v]);
    }
}

static float *scratch_for(int64_t B) { return malloc(sizeof(float) * (G * HID + 2 * B * HID)); }

/* Gradients for members [k0, k1) from dh_last [K][B][H] (overwritten): dtable accumulates, dw is written. */
int lstm_backward(const lstm_problem *p, int64_t k0, int64_t k1, float *dh_last, float *dtable, float *dw) {
    float *scratch = scratch_for(p->B);
    if (!scratch) return 1;
    const unsigned mode = flush_subnormals();
    for (int64_t k = k0; k < k1; k++) backward_member(p, k, dh_last + k * p->B * HID, dtable, dw, scratch);
    restore_mode(mode);
    free(scratch);
    return 0;
}

/* ---- TinyLSTM: Embedding(V, E) -> LSTM -> Linear(H, 1), tokens [K][B][T] (rows = tokens, R = V + 1) ---- */

typedef struct {
    lstm_problem lstm;
    int64_t V, E;
    const float *emb, *w_ih, *b_ih, *b_hh, *w_out, *b_out; /* [K][V][E] [K][E][G] [K][G] [K][G] [K][H] [K] */
    float *logits;                                          /* [K][B] */
} classifier;

typedef struct {
    float *emb, *w_ih, *b_ih, *b_hh, *w_hh, *w_out, *b_out; /* written */
    float *dtable;                                          /* [K][V+1][G], zero-initialised */
} classifier_grads;

static void classifier_forward_member(const classifier *c, int64_t k) {
    const lstm_problem *p = &c->lstm;
    const int64_t V = c->V, E = c->E, T = p->T, B = p->B;
    float *tab = p->table + k * (V + 1) * G;
    const float *emb = c->emb + k * V * E, *w_ih = c->w_ih + k * E * G;
    vf bias[NG];
    for (int u = 0; u < NG; u++) bias[u] = load(c->b_ih + k * G + 16 * u) + load(c->b_hh + k * G + 16 * u);
    for (int64_t v = 0; v < V; v++) { /* row v = bias + emb[v] @ w_ih */
        vf acc[NG];
        for (int u = 0; u < NG; u++) acc[u] = bias[u];
        for (int64_t e = 0; e < E; e++) {
            const vf x = splat(emb[v * E + e]);
            for (int u = 0; u < NG; u++) acc[u] += x * load(w_ih + e * G + 16 * u);
        }
        for (int u = 0; u < NG; u++) store(tab + v * G + 16 * u, acc[u]);
    }
    for (int g = 0; g < G; g++) tab[V * G + g] = g < HID ? -1e4f : 0.0f; /* padding: input gate CLOSED */
    int64_t s = T;
    for (int64_t t = 0; t < T && s == T; t++)
        for (int64_t b = 0; b < B; b++)
            if (p->rows[k * p->rk + t * p->rt + b * p->rb] != V) {
                s = t;
                break;
            }
    p->start[k] = s;
    forward_member(p, k);
    const float *h = p->h_last + k * B * HID, *w_out = c->w_out + k * HID;
    for (int64_t b = 0; b < B; b++) {
        float z = 0.0f;
        for (int j = 0; j < HID; j++) z += h[b * HID + j] * w_out[j];
        c->logits[k * B + b] = z + c->b_out[k];
    }
}

void classifier_forward(const classifier *c, int64_t k0, int64_t k1) {
    const unsigned mode = flush_subnormals();
    for (int64_t k = k0; k < k1; k++) classifier_forward_member(c, k);
    restore_mode(mode);
}

/* Member k's gradients of sum(dz * logits_k) into d (dtable's member k must be zero), after its forward
 * with slots = T; dh is scratch of B*HID floats, scratch as backward_member's. */
static void classifier_backward_member(const classifier *c, int64_t k, const float *dz, const classifier_grads *d,
                                       float *dh, float *scratch) {
    const lstm_problem *p = &c->lstm;
    const int64_t V = c->V, E = c->E, B = p->B;
    const float *h = p->h_last + k * B * HID, *w_out = c->w_out + k * HID;
    float db = 0.0f;
    vf dw_out[NH];
    for (int u = 0; u < NH; u++) dw_out[u] = splat(0.0f);
    for (int64_t b = 0; b < B; b++) { /* the head: dh = dz w_out, d w_out = sum of dz h */
        const vf x = splat(dz[b]);
        db += dz[b];
        for (int u = 0; u < NH; u++) {
            store(dh + b * HID + 16 * u, x * load(w_out + 16 * u));
            dw_out[u] += x * load(h + b * HID + 16 * u);
        }
    }
    for (int u = 0; u < NH; u++) store(d->w_out + k * HID + 16 * u, dw_out[u]);
    d->b_out[k] = db;
    backward_member(p, k, dh, d->dtable, d->w_hh, scratch);
    const float *dtab = d->dtable + k * (V + 1) * G, *emb = c->emb + k * V * E, *w_ih = c->w_ih + k * E * G;
    float *demb = d->emb + k * V * E;
    vf dbias[NG]; /* the padding row V takes no gradient back: rows 0..V-1 only */
    for (int u = 0; u < NG; u++) dbias[u] = splat(0.0f);
    for (int64_t v = 0; v < V; v++) {
        const float *dr = dtab + v * G;
        for (int u = 0; u < NG; u++) dbias[u] += load(dr + 16 * u);
        for (int64_t e = 0; e < E; e++) { /* d emb[v, e] = dtable[v] . w_ih[e] */
            vf acc = splat(0.0f);
            for (int u = 0; u < NG; u++) acc += load(dr + 16 * u) * load(w_ih + e * G + 16 * u);
            demb[v * E + e] = hsum(acc);
        }
    }
    for (int u = 0; u < NG; u++) {
        store(d->b_ih + k * G + 16 * u, dbias[u]);
        store(d->b_hh + k * G + 16 * u, dbias[u]);
    }
    for (int64_t e = 0; e < E; e++) { /* d w_ih[e] = sum over v of emb[v, e] dtable[v] */
        vf acc[NG];
        for (int u = 0; u < NG; u++) acc[u] = splat(0.0f);
        for (int64_t v = 0; v < V; v++) {
            const vf x = splat(emb[v * E + e]);
            for (int u = 0; u < NG; u++) acc[u] += x * load(dtab + v * G + 16 * u);
        }
        for (int u = 0; u < NG; u++) store(d->w_ih + (k * E + e) * G + 16 * u, acc[u]);
    }
}

/* Gradients of sum(dlogits * logits) for members [k0, k1), after classifier_forward with slots = T. */
int classifier_backward(const classifier *c, int64_t k0, int64_t k1, const float *dlogits, const classifier_grads *d) {
    float *scratch = scratch_for(c->lstm.B);
    if (!scratch) return 1;
    const unsigned mode = flush_subnormals();
    for (int64_t k = k0; k < k1; k++)
        classifier_backward_member(c, k, dlogits + k * c->lstm.B, d, scratch + G * HID + c->lstm.B * HID, scratch);
    restore_mode(mode);
    free(scratch);
    return 0;
}

/* A whole training step's forward and backward for members [k0, k1) under the loss
 *   loss_k = mean over b of BCE-with-logits(logits[k, b], labels[k, b]),
 * without a round trip through Python between them: writes loss [K] and the gradients of sum_k loss_k.
 * d(loss_k)/d(logit) = (sigmoid(z) - y) * (1/B), in the order PyTorch's autograd computes it. */
int classifier_bce_step(const classifier *c, int64_t k0, int64_t k1, const float *labels, float *loss,
                        const classifier_grads *d) {
    const int64_t B = c->lstm.B, rows = (c->V + 1) * G;
    float *scratch = scratch_for(B), *dz = malloc(sizeof(float) * B);
    if (!scratch || !dz) {
        free(scratch), free(dz);
        return 1;
    }
    const unsigned mode = flush_subnormals();
    const float inv_b = 1.0f / (float)B;
    for (int64_t k = k0; k < k1; k++) {
        classifier_forward_member(c, k);
        const float *z = c->logits + k * B, *y = labels + k * B;
        double total = 0.0;
        for (int64_t b = 0; b < B; b++) {
            total += fmaxf(z[b], 0.0f) - z[b] * y[b] + log1pf(expf(-fabsf(z[b])));
            dz[b] = (1.0f / (1.0f + expf(-z[b])) - y[b]) * inv_b;
        }
        loss[k] = (float)(total / (double)B);
        memset(d->dtable + k * rows, 0, sizeof(float) * rows);
        classifier_backward_member(c, k, dz, d, scratch + G * HID + B * HID, scratch);
    }
    restore_mode(mode);
    free(scratch), free(dz);
    return 0;
}
