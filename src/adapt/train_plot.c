/* The loss curve of a fine-tuning run as a hand-written SVG: axes with
 * ticks, the training loss of each step as a line, the validation losses as
 * a line with dots, a legend. */
#include "adapt/train.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t c = b->cap ? b->cap * 2 : 8192;
        while (c < b->n + (size_t)k + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = c;
    }
}

/* A "nice" tick step for a span divided into about n parts. */
static double tick_step(double span, int n) {
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

owl_status owl_train_plot_svg(const owl_train_state *s, const char *path) {
    const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < s->n_loss; i++)
        if (isfinite(s->loss[i])) lo = fmin(lo, s->loss[i]), hi = fmax(hi, s->loss[i]);
    for (int i = 0; i < s->n_val; i++)
        if (isfinite(s->val[i])) lo = fmin(lo, s->val[i]), hi = fmax(hi, s->val[i]);
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-6) lo -= 0.5, hi += 0.5;
    const double ys = tick_step(hi - lo, 6);
    lo = floor(lo / ys) * ys;
    hi = ceil(hi / ys) * ys;
    const double steps = s->n_loss > 1 ? s->n_loss : 1;
    const double xs = tick_step(steps, 8) < 1 ? 1 : tick_step(steps, 8);
#define PX(step) (L + (W - L - R) * ((step) / steps))
#define PY(v) (T + (H - T - B) * (1.0 - ((v) - lo) / (hi - lo)))
    sbuf b = {0};
    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
              "font-family=\"sans-serif\" font-size=\"12\">\n"
              "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
              "<text x=\"%.0f\" y=\"24\" font-size=\"15\">owl finetune: loss</text>\n",
              W, H, W, H, L);
    /* grid and ticks */
    for (double v = lo; v <= hi + ys / 2; v += ys)
        sb_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  L, PY(v), W - R, PY(v), L - 6, PY(v) + 4, fabs(v) < ys / 1e6 ? 0.0 : v);
    for (double x = 0; x <= steps + xs / 2; x += xs)
        sb_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                  PX(x), T, PX(x), H - B, PX(x), H - B + 16, x);
    sb_printf(&b,
              "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#333\"/>\n"
              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">optimiser step</text>\n"
              "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">"
              "cross-entropy (nats / token)</text>\n",
              L, T, W - L - R, H - T - B, (L + W - R) / 2, H - 10, (T + H - B) / 2, (T + H - B) / 2);
    /* training loss: value of step i plotted at step i + 1 (after it) */
    sb_printf(&b, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; i < s->n_loss; i++)
        if (isfinite(s->loss[i])) sb_printf(&b, "%.1f,%.1f ", PX(i + 1.0), PY(s->loss[i]));
    sb_printf(&b, "\"/>\n");
    if (s->n_val) {
        sb_printf(&b, "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" points=\"");
        for (int i = 0; i < s->n_val; i++)
            if (isfinite(s->val[i])) sb_printf(&b, "%.1f,%.1f ", PX((double)s->val_step[i]), PY(s->val[i]));
        sb_printf(&b, "\"/>\n");
        for (int i = 0; i < s->n_val; i++)
            if (isfinite(s->val[i]))
                sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#d62728\"/>\n",
                          PX((double)s->val_step[i]), PY(s->val[i]));
    }
    sb_printf(&b,
              "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
              "<text x=\"%.0f\" y=\"%.0f\">training</text>\n",
              W - R - 170, T + 16, W - R - 145, T + 16, W - R - 140, T + 20);
    if (s->n_val)
        sb_printf(&b,
                  "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#d62728\" stroke-width=\"2\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\">validation</text>\n",
                  W - R - 170, T + 34, W - R - 145, T + 34, W - R - 140, T + 38);
    sb_printf(&b, "</svg>\n");
#undef PX
#undef PY
    owl_status st = b.oom ? owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for the plot", path)
                          : owl_write_file_atomic(path, b.p, b.n);
    free(b.p);
    return st;
}
