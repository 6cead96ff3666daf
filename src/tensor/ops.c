/* The element-wise ops of a decoder block on float rows: RMS norm, rotary
 * position embedding (adjacent pairs and NeoX halves), softmax and SwiGLU.
 * Sums run in double; RMS norm and SwiGLU have AVX-512 paths, softmax and
 * SwiGLU share a vectorised exp (relative error ~2e-7 over the float range). */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <math.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* ---- RMS norm ---- */

TGT static double sumsq_avx512(const float *x, int n) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

TGT static void scale_mul_avx512(float *out, const float *x, const float *w, float scale, int n) {
    __m512 sc = _mm512_set1_ps(scale);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), sc);
        if (w) v = _mm512_mul_ps(v, _mm512_loadu_ps(w + i));
        _mm512_storeu_ps(out + i, v);
    }
    for (; i < n; i++) out[i] = w ? x[i] * scale * w[i] : x[i] * scale;
}

void owl_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    if (n <= 0) return;
    bool simd = owl_kernel_level() == OWL_ISA_AVX512;
    double ss = 0.0;
    if (simd) {
        ss = sumsq_avx512(x, n);
    } else {
        for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    }
    float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    if (simd) {
        scale_mul_avx512(out, x, w, scale, n);
    } else {
        for (int i = 0; i < n; i++) out[i] = w ? x[i] * scale * w[i] : x[i] * scale;
    }
}

/* ---- RoPE ---- */

void owl_rope(float *x, int head_dim, int n_rot, int pos, float freq_base, float freq_scale, bool neox) {
    if (n_rot > head_dim) n_rot = head_dim;
    int half = n_rot / 2;
    double p = (double)pos * (double)freq_scale;
    for (int i = 0; i < half; i++) {
        double theta = p * pow((double)freq_base, -2.0 * i / n_rot);
        double c = cos(theta), s = sin(theta);
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        double x0 = x[a], x1 = x[b];
        x[a] = (float)(x0 * c - x1 * s);
        x[b] = (float)(x0 * s + x1 * c);
    }
}

/* ---- exp, softmax, SwiGLU ---- */

/* exp(x) for a vector: x = k ln2 + r with |r| <= ln2/2, a degree-7 Taylor
 * polynomial for e^r (error < 3e-8 relative), then scale by 2^k. Inputs below
 * -104 give exactly 0 (so -inf does), above 88.7 give inf; NaN stays NaN. */
TGT static inline __m512 exp_avx512(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2hi = _mm512_set1_ps(0.693145751953125f), ln2lo = _mm512_set1_ps(1.428606765330187e-06f);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-104.0f), _CMP_LT_OQ);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512 x0 = x;
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, ln2hi, x);
    r = _mm512_fnmadd_ps(k, ln2lo, r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 e = _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_scalef_ps(p, k));
    return _mm512_mask_mov_ps(e, nan, x0);
}

TGT static void softmax_avx512(float *x, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + i));
    float m = _mm512_reduce_max_ps(mx);
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    __m512 vm = _mm512_set1_ps(m);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / sum);
}

void owl_softmax(float *x, int n) {
    if (n <= 0) return;
    if (owl_kernel_level() == OWL_ISA_AVX512) {
        float m = x[0];
        for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
        if (isfinite(m)) {
            softmax_avx512(x, n);
            return;
        }
    }
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

TGT static void swiglu_avx512(float *out, const float *gate, const float *up, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void owl_swiglu(float *out, const float *gate, const float *up, int n) {
    if (n <= 0) return;
    if (owl_kernel_level() == OWL_ISA_AVX512) {
        swiglu_avx512(out, gate, up, n);
        return;
    }
    for (int i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* GeGLU with the tanh form of gelu, written as 0.5 x (1 + tanh(u)) =
 * x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3): one exp per
 * element (vectorised with AVX-512); large |x| give x or -0 exactly. */
TGT static void geglu_avx512(float *out, const float *gate, const float *up, int n) {
    const __m512 one = _mm512_set1_ps(1.0f), c2 = _mm512_set1_ps(-2.0f * 0.7978845608028654f),
                 k = _mm512_set1_ps(0.044715f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(gate + i);
        __m512 u = _mm512_mul_ps(c2, _mm512_fmadd_ps(_mm512_mul_ps(k, x), _mm512_mul_ps(x, x), x));
        __m512 g = _mm512_div_ps(x, _mm512_add_ps(one, exp_avx512(u)));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(g, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        const float x = gate[i];
        out[i] = x / (1.0f + expf(-2.0f * 0.7978845608028654f * (x + 0.044715f * x * x * x))) * up[i];
    }
}

void owl_geglu(float *out, const float *gate, const float *up, int n) {
    if (n <= 0) return;
    if (owl_kernel_level() == OWL_ISA_AVX512) {
        geglu_avx512(out, gate, up, n);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float x = gate[i];
        out[i] = x / (1.0f + expf(-2.0f * 0.7978845608028654f * (x + 0.044715f * x * x * x))) * up[i];
    }
}

void owl_softcap(float *x, int n, float cap) {
    const float inv = 1.0f / cap;
    for (int i = 0; i < n; i++) x[i] = cap * tanhf(x[i] * inv);
}
