/* owl inspect: what a model file holds - architecture, parameters, tensor
 * types, tokenizer, every metadata key, the licence and the SHA-256 of each
 * file. */
#include "cli/args.h"
#include "cli/govern_cli.h"
#include "format/format.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "inspect";

static void inspect_help(FILE *f) {
    fprintf(f, "usage: owl inspect MODEL [--json] [--no-hash]\n"
               "\n"
               "Prints what MODEL (a GGUF file, a llama2.c checkpoint or a Hugging Face\n"
               "directory) holds: architecture, parameter count, tensors per type (count\n"
               "and bytes), context length, tokenizer (type, size, chat template, special\n"
               "tokens), every metadata key (long arrays summarised; --json has them\n"
               "whole), the licence (as owl license finds it) and the SHA-256 of each file.\n"
               "\n"
               "      --json     machine-readable output\n"
               "      --no-hash  skip the SHA-256 digests (they read every byte)\n"
               "  -h, --help     this text\n");
}

/* ---- metadata values ---- */

/* A JSON string from bytes that may not be UTF-8: bad bytes become U+FFFD. */
static json_t *json_bytes(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *o = malloc(n * 3 + 1);
    if (!o) return json_null();
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int len = owl_utf8_len((uint8_t)s[i]);
        bool ok = len > 0 && i + (size_t)len <= n && s[i] != 0;
        for (int t = 1; ok && t < len; t++) ok = ((uint8_t)s[i + t] & 0xC0) == 0x80;
        if (ok && json_stringn(s + i, (size_t)len) == NULL) ok = false;
        if (ok) {
            memcpy(o + k, s + i, (size_t)len);
            k += (size_t)len;
            i += (size_t)len;
        } else {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        }
    }
    j = json_stringn(o, k);
    free(o);
    return j ? j : json_null();
}

static json_t *value_json(const owl_meta_value *v) {
    switch (v->type) {
    case OWL_META_U8: case OWL_META_U16: case OWL_META_U32: case OWL_META_U64:
        return v->u > (uint64_t)INT64_MAX ? json_real((double)v->u) : json_integer((json_int_t)v->u);
    case OWL_META_I8: case OWL_META_I16: case OWL_META_I32: case OWL_META_I64: return json_integer(v->i);
    case OWL_META_F32: case OWL_META_F64: return json_real(v->f);
    case OWL_META_BOOL: return json_boolean(v->u != 0);
    case OWL_META_STRING: return json_bytes(v->s.ptr, v->s.len);
    case OWL_META_ARRAY: {
        json_t *a = json_array();
        for (uint64_t i = 0; i < v->arr.count; i++) {
            json_t *e;
            owl_meta_type t = v->arr.elem;
            if (t == OWL_META_STRING) e = json_bytes(v->arr.strs[i].ptr, v->arr.strs[i].len);
            else if (t == OWL_META_ARRAY) e = value_json(&v->arr.items[i]);
            else if (t == OWL_META_F32 || t == OWL_META_F64) e = json_real(owl_meta_arr_f64(v, i));
            else if (t == OWL_META_BOOL) e = json_boolean(owl_meta_arr_i64(v, i) != 0);
            else e = json_integer(owl_meta_arr_i64(v, i));
            json_array_append_new(a, e);
        }
        return a;
    }
    default: return json_null();
    }
}

static void print_str(FILE *f, const char *s, size_t n, size_t max) {
    fputc('"', f);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", f);
        else if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
    if (n > max) fprintf(f, "... (%zu bytes)", n);
}

static void print_value(FILE *f, const owl_meta_value *v) {
    switch (v->type) {
    case OWL_META_U8: case OWL_META_U16: case OWL_META_U32: case OWL_META_U64: fprintf(f, "%llu", (unsigned long long)v->u); break;
    case OWL_META_I8: case OWL_META_I16: case OWL_META_I32: case OWL_META_I64: fprintf(f, "%lld", (long long)v->i); break;
    case OWL_META_F32: case OWL_META_F64: fprintf(f, "%.9g", v->f); break;
    case OWL_META_BOOL: fputs(v->u ? "true" : "false", f); break;
    case OWL_META_STRING: print_str(f, v->s.ptr, v->s.len, 72); break;
    case OWL_META_ARRAY: {
        uint64_t n = v->arr.count, show = n < 6 ? n : 6;
        fprintf(f, "[%llu x %s] ", (unsigned long long)n, owl_meta_type_name(v->arr.elem));
        for (uint64_t i = 0; i < show; i++) {
            if (i) fputs(", ", f);
            owl_meta_type t = v->arr.elem;
            if (t == OWL_META_STRING) print_str(f, v->arr.strs[i].ptr, v->arr.strs[i].len, 24);
            else if (t == OWL_META_ARRAY) fputs("[...]", f);
            else if (t == OWL_META_F32 || t == OWL_META_F64) fprintf(f, "%.6g", owl_meta_arr_f64(v, i));
            else fprintf(f, "%lld", (long long)owl_meta_arr_i64(v, i));
        }
        if (n > show) fputs(", ...", f);
        break;
    }
    default: fputs("?", f);
    }
}

/* ---- files and digests ---- */

typedef struct file_entry {
    char *path;
    uint64_t size;
    char sha[65];
} file_entry;

static int cmp_files(const void *a, const void *b) {
    return strcmp(((const file_entry *)a)->path, ((const file_entry *)b)->path);
}

static bool list_files(const char *model, file_entry **out, size_t *n_out) {
    file_entry *fs = NULL;
    size_t n = 0;
    struct stat st;
    if (owl_is_dir(model)) {
        DIR *d = opendir(model);
        if (!d) return false;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            size_t len = strlen(model) + strlen(e->d_name) + 2;
            char *p = malloc(len);
            if (!p) break;
            snprintf(p, len, "%s/%s", model, e->d_name);
            if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
                free(p);
                continue;
            }
            file_entry *g = realloc(fs, (n + 1) * sizeof *g);
            if (!g) {
                free(p);
                break;
            }
            fs = g;
            fs[n++] = (file_entry){p, (uint64_t)st.st_size, ""};
        }
        closedir(d);
        if (n) qsort(fs, n, sizeof *fs, cmp_files);
    } else if (stat(model, &st) == 0) {
        fs = malloc(sizeof *fs);
        size_t len = strlen(model) + 1;
        char *p = fs ? malloc(len) : NULL;
        if (!p) {
            free(fs);
            return false;
        }
        memcpy(p, model, len);
        fs[n++] = (file_entry){p, (uint64_t)st.st_size, ""};
    }
    *out = fs;
    *n_out = n;
    return true;
}

/* ---- the report ---- */

typedef struct dtype_stat {
    uint64_t tensors, bytes;
} dtype_stat;

static bool meta_str(const owl_meta *m, const char *key, char *buf, size_t cap) {
    owl_str s;
    if (!owl_meta_get_str(m, key, &s)) return false;
    snprintf(buf, cap, "%.*s", (int)(s.len < cap ? s.len : cap - 1), s.ptr);
    return true;
}

static const owl_str *token_piece(const owl_meta *m, int64_t id) {
    const owl_meta_value *t = owl_meta_find(m, "tokenizer.ggml.tokens");
    if (!t || t->type != OWL_META_ARRAY || t->arr.elem != OWL_META_STRING) return NULL;
    if (id < 0 || (uint64_t)id >= t->arr.count) return NULL;
    return &t->arr.strs[id];
}

int cli_inspect(int argc, char **argv) {
    const char *model = NULL;
    bool json = false, hash = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            inspect_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) json = true;
        else if (strcmp(a, "--no-hash") == 0) hash = false;
        else if (a[0] == '-' && a[1]) return cli_usage_error(CMD, "unknown option '%s'", a);
        else if (!model) model = a;
        else return cli_usage_error(CMD, "unexpected argument '%s'", a);
    }
    if (!model) return cli_usage_error(CMD, "no MODEL given");
    if (!(model = cli_model_resolve(CMD, model, false)) || !cli_model_path_ok(CMD, model)) return CLI_EXIT_RUNTIME;
    owl_weights ws;
    if (owl_weights_open(model, NULL, &ws)) return cli_error(CMD, "%s", owl_last_error());
    const owl_meta *m = &ws.meta;

    dtype_stat ds[OWL_DTYPE_COUNT] = {{0, 0}};
    uint64_t params = 0;
    for (size_t i = 0; i < ws.n; i++) {
        const owl_weight *w = &ws.w[i];
        params += (uint64_t)owl_weight_nelem(w);
        if ((int)w->dtype >= 0 && w->dtype < OWL_DTYPE_COUNT) {
            ds[w->dtype].tensors++;
            ds[w->dtype].bytes += w->nbytes;
        }
    }
    char arch[64] = "", key[160], tok_model[64] = "";
    meta_str(m, "general.architecture", arch, sizeof arch);
    uint64_t ctx = 0;
    snprintf(key, sizeof key, "%s.context_length", arch);
    bool have_ctx = arch[0] && owl_meta_get_u64(m, key, &ctx);
    meta_str(m, "tokenizer.ggml.model", tok_model, sizeof tok_model);
    const owl_meta_value *toks = owl_meta_find(m, "tokenizer.ggml.tokens");
    uint64_t n_tokens = toks && toks->type == OWL_META_ARRAY ? toks->arr.count : 0;
    bool chat_template = owl_meta_find(m, "tokenizer.chat_template") != NULL;
    static const char *const special[] = {"bos", "eos", "unk", "pad"};
    static const char *const special_key[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                              "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};

    /* the licence: a directory's card and licence files, a GGUF file's keys;
     * other files carry none */
    owl_license_report lic;
    owl_status lst = owl_is_dir(model) ? owl_license_detect(model, &lic) : owl_license_detect_meta(model, m, &lic);
    if (lst) {
        owl_weights_free(&ws);
        return cli_error(CMD, "%s", owl_last_error());
    }

    file_entry *files = NULL;
    size_t n_files = 0;
    list_files(model, &files, &n_files);
    int rc = CLI_EXIT_OK;
    if (hash)
        for (size_t i = 0; i < n_files; i++)
            if (owl_sha256_file(files[i].path, files[i].sha)) {
                rc = cli_error(CMD, "%s", owl_last_error());
                goto done;
            }

    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "path", json_string(model));
        json_object_set_new(o, "format", json_string(ws.format));
        json_object_set_new(o, "architecture", arch[0] ? json_string(arch) : json_null());
        json_object_set_new(o, "parameters", json_integer((json_int_t)params));
        json_object_set_new(o, "tensors", json_integer((json_int_t)ws.n));
        json_t *dj = json_object();
        for (int t = 0; t < OWL_DTYPE_COUNT; t++)
            if (ds[t].tensors) {
                json_t *e = json_object();
                json_object_set_new(e, "tensors", json_integer((json_int_t)ds[t].tensors));
                json_object_set_new(e, "bytes", json_integer((json_int_t)ds[t].bytes));
                json_object_set_new(dj, owl_dtype_name((owl_dtype)t), e);
            }
        json_object_set_new(o, "dtypes", dj);
        json_object_set_new(o, "context_length", have_ctx ? json_integer((json_int_t)ctx) : json_null());
        json_t *tj = json_object();
        json_object_set_new(tj, "model", tok_model[0] ? json_string(tok_model) : json_null());
        json_object_set_new(tj, "tokens", json_integer((json_int_t)n_tokens));
        json_object_set_new(tj, "chat_template", json_boolean(chat_template));
        for (size_t s = 0; s < 4; s++) {
            int64_t id;
            if (!owl_meta_get_i64(m, special_key[s], &id)) continue;
            json_t *e = json_object();
            json_object_set_new(e, "id", json_integer(id));
            const owl_str *p = token_piece(m, id);
            json_object_set_new(e, "piece", p ? json_bytes(p->ptr, p->len) : json_null());
            json_object_set_new(tj, special[s], e);
        }
        json_object_set_new(o, "tokenizer", tj);
        json_t *mj = json_object();
        for (size_t i = 0; i < m->n; i++) {
            char *k = strndup(m->entries[i].key.ptr, m->entries[i].key.len);
            if (!k) continue;
            json_object_set_new(mj, k, value_json(&m->entries[i].value));
            free(k);
        }
        json_object_set_new(o, "metadata", mj);
        json_object_set_new(o, "license", cli_license_json(&lic));
        json_t *fj = json_array();
        for (size_t i = 0; i < n_files; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "path", json_string(files[i].path));
            json_object_set_new(e, "bytes", json_integer((json_int_t)files[i].size));
            json_object_set_new(e, "sha256", hash ? json_string(files[i].sha) : json_null());
            json_array_append_new(fj, e);
        }
        json_object_set_new(o, "files", fj);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("model:             %s (%s)\n", model, ws.format);
        printf("architecture:      %s\n", arch[0] ? arch : "(none)");
        printf("parameters:        %llu\n", (unsigned long long)params);
        printf("tensors:           %zu\n", ws.n);
        for (int t = 0; t < OWL_DTYPE_COUNT; t++)
            if (ds[t].tensors)
                printf("  %-8s         %llu tensors, %llu bytes\n", owl_dtype_name((owl_dtype)t),
                       (unsigned long long)ds[t].tensors, (unsigned long long)ds[t].bytes);
        if (have_ctx) printf("context length:    %llu\n", (unsigned long long)ctx);
        else printf("context length:    (not given)\n");
        printf("tokenizer:         %s, %llu tokens, chat template %s\n", tok_model[0] ? tok_model : "(none)",
               (unsigned long long)n_tokens, chat_template ? "present" : "absent");
        for (size_t s = 0; s < 4; s++) {
            int64_t id;
            if (!owl_meta_get_i64(m, special_key[s], &id)) continue;
            printf("  %s:              %lld ", special[s], (long long)id);
            const owl_str *p = token_piece(m, id);
            if (p) print_str(stdout, p->ptr, p->len, 40);
            else fputs("(no such token)", stdout);
            putchar('\n');
        }
        printf("metadata:          %zu keys\n", m->n);
        for (size_t i = 0; i < m->n; i++) {
            printf("  %-40.*s %-7s ", (int)m->entries[i].key.len, m->entries[i].key.ptr,
                   owl_meta_type_name(m->entries[i].value.type));
            print_value(stdout, &m->entries[i].value);
            putchar('\n');
        }
        cli_license_print(stdout, &lic);
        printf("files:\n");
        for (size_t i = 0; i < n_files; i++)
            printf("  %s  %llu bytes  %s\n", hash ? files[i].sha : "(not hashed)", (unsigned long long)files[i].size,
                   files[i].path);
    }
done:
    for (size_t i = 0; i < n_files; i++) free(files[i].path);
    free(files);
    owl_license_report_free(&lic);
    owl_weights_free(&ws);
    return rc;
}
