/* The public adapter calls of include/owl.h. */
#include "adapt/adapt.h"
#include "owl.h"

owl_status owl_lora_load(const owl_model *model, const char *path, owl_lora **out) {
    if (!out) return owl_errorf(OWL_ERR_ARG, "owl_lora_load: no output");
    return owl_lora_read(model, path, out);
}

owl_status owl_ctx_set_adapters(owl_ctx *ctx, const owl_lora *const *adapters, const float *scales, int n) {
    if (!ctx) return owl_errorf(OWL_ERR_ARG, "owl_ctx_set_adapters: no context");
    if (n < 0 || n > OWL_LORA_MAX)
        return owl_errorf(OWL_ERR_RANGE, "%d adapters at once; owl applies at most %d", n, OWL_LORA_MAX);
    if (n > 0 && !adapters) return owl_errorf(OWL_ERR_ARG, "owl_ctx_set_adapters: no adapters");
    owl_lora_set set = {.n = n};
    for (int i = 0; i < n; i++) {
        const owl_lora *lo = adapters[i];
        if (!lo) return owl_errorf(OWL_ERR_ARG, "owl_ctx_set_adapters: adapter %d is NULL", i);
        if (lo->model != ctx->model)
            return owl_errorf(OWL_ERR_ARG, "adapter %d (%s) was loaded for another model than the context's", i,
                              lo->path ? lo->path : "in memory");
        set.w[i] = &lo->w;
        set.scale[i] = scales ? scales[i] : 1.0f;
        if (!(set.scale[i] == set.scale[i]) || set.scale[i] > 1e6f || set.scale[i] < -1e6f)
            return owl_errorf(OWL_ERR_RANGE, "adapter %d: scale %g", i, (double)set.scale[i]);
    }
    return owl_ctx_set_lora(ctx, &set);
}
