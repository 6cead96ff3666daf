/* A model's licence from everything that names it: GGUF metadata, the model
 * card's front matter, licence files. The verdict is cautious: one source
 * that cannot be read or recognised, or two sources naming different
 * licences, make the model's licence unknown (with a note saying why). */
#include "govern/govern.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_TEXT_BYTES = 4 << 20 };

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static owl_license_source *add_source(owl_license_report *r, owl_license_source_kind kind, const char *where) {
    owl_license_source *s = realloc(r->src, (r->n + 1) * sizeof *s);
    if (!s) return NULL;
    r->src = s;
    s = &r->src[r->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->where = dup_str(where);
    return s;
}

static void set_error(owl_license_source *s) { s->error = dup_str(owl_last_error()); }

void owl_license_report_free(owl_license_report *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->src[i].where);
        free(r->src[i].declared);
        free(r->src[i].link);
        free(r->src[i].error);
    }
    free(r->src);
    memset(r, 0, sizeof *r);
}

/* ---- sources ---- */

static owl_status text_source(owl_license_report *r, const char *path, const char *where) {
    owl_license_source *s = add_source(r, OWL_LIC_SRC_TEXT, where);
    if (!s) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
    char *data = NULL;
    size_t size = 0;
    owl_status st = owl_read_file(path, &data, &size);
    if (st == OWL_OK && size > MAX_TEXT_BYTES) {
        owl_errorf(OWL_ERR_FORMAT, "%s: %zu bytes is too large for a licence text", where, size);
        st = OWL_ERR_FORMAT;
    }
    if (st == OWL_OK) st = owl_license_classify_text(where, (const uint8_t *)data, size, &s->match);
    if (st) set_error(s);
    free(data);
    return OWL_OK;
}

static void from_tag(owl_license_source *s, const char *tag, const char *name, const char *what) {
    s->match.info = owl_license_from_tag(tag, name);
    if (s->match.info) {
        if (name && strcasecmp(tag, "other") != 0)
            snprintf(s->match.reason, sizeof s->match.reason,
                     "%s name '%.60s' ignored: a name only counts with license 'other'", what, name);
        return;
    }
    if (strcasecmp(tag, "other") == 0 && !(name && *name))
        snprintf(s->match.reason, sizeof s->match.reason, "%s 'other' without %s",
                 strcmp(what, "card") == 0 ? "license:" : "general.license",
                 strcmp(what, "card") == 0 ? "license_name" : "general.license.name");
    else if (strcasecmp(tag, "unknown") == 0)
        snprintf(s->match.reason, sizeof s->match.reason, "the %s says the licence is unknown", what);
    else
        snprintf(s->match.reason, sizeof s->match.reason, "'%.80s' is not a licence owl knows",
                 strcasecmp(tag, "other") == 0 ? name : tag);
}

static owl_status card_source(owl_license_report *r, const char *path, const char *where) {
    char *data = NULL;
    size_t size = 0;
    owl_status st = owl_read_file(path, &data, &size);
    owl_frontmatter fm = {0};
    if (st == OWL_OK) st = owl_frontmatter_parse(where, data, size, &fm);
    if (st == OWL_OK && !fm.license && !fm.license_is_list && !fm.license_name) { /* names no licence */
        free(data);
        owl_frontmatter_free(&fm);
        return OWL_OK;
    }
    owl_license_source *s = add_source(r, OWL_LIC_SRC_CARD, where);
    if (!s) {
        free(data);
        owl_frontmatter_free(&fm);
        return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st) {
        set_error(s);
    } else if (fm.license_is_list) {
        snprintf(s->match.reason, sizeof s->match.reason, "the card lists several licences");
    } else if (!fm.license) {
        snprintf(s->match.reason, sizeof s->match.reason, "license_name without license");
        s->declared = dup_str(fm.license_name);
    } else {
        size_t n = strlen(fm.license) + (fm.license_name ? strlen(fm.license_name) : 0) + 32;
        s->declared = malloc(n);
        if (s->declared)
            snprintf(s->declared, n, "license: %s%s%s", fm.license, fm.license_name ? ", license_name: " : "",
                     fm.license_name ? fm.license_name : "");
        s->link = dup_str(fm.license_link);
        from_tag(s, fm.license, fm.license_name, "card");
    }
    free(data);
    owl_frontmatter_free(&fm);
    return OWL_OK;
}

static void str_of(const owl_meta *meta, const char *key, char **out, bool *bad) {
    const owl_meta_value *v = owl_meta_find(meta, key);
    if (!v) return;
    if (v->type != OWL_META_STRING) {
        *bad = true;
        owl_errorf(OWL_ERR_FORMAT, "%s is a %s, not a string", key, owl_meta_type_name(v->type));
        return;
    }
    char *s = malloc(v->s.len + 1);
    if (!s) return;
    memcpy(s, v->s.ptr, v->s.len);
    s[v->s.len] = 0;
    if (strlen(s) != v->s.len) { /* NUL inside */
        free(s);
        *bad = true;
        owl_errorf(OWL_ERR_FORMAT, "%s contains a NUL byte", key);
        return;
    }
    *out = s;
}

static owl_status meta_source(const char *name, const owl_meta *meta, owl_license_report *out) {
    char *lic = NULL, *lname = NULL, *link = NULL;
    bool bad = false;
    str_of(meta, "general.license", &lic, &bad);
    if (!bad) str_of(meta, "general.license.name", &lname, &bad);
    if (!bad) str_of(meta, "general.license.link", &link, &bad);
    if (bad || lic || lname) {
        size_t n = strlen(name) + 32;
        char *where = malloc(n);
        if (where) snprintf(where, n, "%s (general.license)", name);
        owl_license_source *s = add_source(out, OWL_LIC_SRC_GGUF, where ? where : name);
        free(where);
        if (!s) {
            free(lic), free(lname), free(link);
            return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", name);
        }
        if (bad) {
            owl_error_prefix(OWL_ERR_FORMAT, "%s", name);
            set_error(s);
        } else if (!lic) {
            snprintf(s->match.reason, sizeof s->match.reason, "general.license.name without general.license");
            s->declared = lname, lname = NULL;
        } else if (strlen(lic) > 400) {
            /* a whole licence text in the key */
            s->declared = dup_str("(licence text)");
            if (owl_license_classify_text(s->where, (const uint8_t *)lic, strlen(lic), &s->match)) set_error(s);
        } else {
            size_t n2 = strlen(lic) + (lname ? strlen(lname) : 0) + 8;
            s->declared = malloc(n2);
            if (s->declared) snprintf(s->declared, n2, "%s%s%s", lic, lname ? " / " : "", lname ? lname : "");
            from_tag(s, lic, lname, "GGUF");
        }
        if (s->link == NULL) s->link = link, link = NULL;
    }
    free(lic), free(lname), free(link);
    return OWL_OK;
}

/* The licence owl.manifest.json carries over from the model this one was
 * made from (owl convert / quantize / lora merge). A broken manifest is a
 * source that could not be read, not a failure. */
static owl_status derived_source(owl_license_report *r, const char *path) {
    owl_model_source ms;
    owl_status st = owl_manifest_source(path, &ms);
    if (st == OWL_OK && !ms.present) return OWL_OK;
    char where[1200];
    snprintf(where, sizeof where, "made from %.1000s (owl.manifest.json)", st ? "?" : ms.path);
    owl_license_source *s = add_source(r, OWL_LIC_SRC_SOURCE, where);
    if (!s) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
    if (st) {
        set_error(s);
        return OWL_OK;
    }
    s->declared = dup_str(ms.license[0] ? ms.license : "unknown");
    s->match.info = ms.license[0] ? owl_license_find(ms.license) : NULL;
    if (!s->match.info)
        snprintf(s->match.reason, sizeof s->match.reason, ms.license[0] ? "'%.60s' is not a licence owl knows"
                                                                          : "the source's licence was unknown: %.120s",
                 ms.license[0] ? ms.license : ms.note);
    return OWL_OK;
}

/* ---- verdict ---- */

static void decide(owl_license_report *r) {
    r->license = NULL;
    r->conflict = false;
    r->note[0] = 0;
    const owl_license_info *found = NULL;
    const char *found_where = NULL;
    bool any_policy = false;
    for (size_t i = 0; i < r->n; i++) {
        const owl_license_source *s = &r->src[i];
        if (s->error) {
            snprintf(r->note, sizeof r->note, "%s could not be read: %s", s->where, s->error);
            return;
        }
        if (!s->match.info) {
            snprintf(r->note, sizeof r->note, "%s: %s", s->where, s->match.reason[0] ? s->match.reason : "unknown");
            return;
        }
        if (s->match.info->policy) {
            any_policy = true;
            continue;
        }
        if (found && found != s->match.info) {
            r->conflict = true;
            snprintf(r->note, sizeof r->note, "conflict: %s says %s, %s says %s", found_where, found->id, s->where,
                     s->match.info->id);
            return;
        }
        found = s->match.info;
        found_where = s->where;
    }
    if (!found) {
        snprintf(r->note, sizeof r->note, "%s", any_policy ? "only a use policy was found, no licence"
                                               : r->n == 0 ? "no licence information found"
                                                           : "unknown");
        return;
    }
    r->license = found;
}

owl_status owl_license_detect_meta(const char *name, const owl_meta *meta, owl_license_report *out) {
    memset(out, 0, sizeof *out);
    owl_status st = meta_source(name, meta, out);
    if (st == OWL_OK) st = derived_source(out, name);
    if (st) {
        owl_license_report_free(out);
        return st;
    }
    decide(out);
    return OWL_OK;
}

static bool is_licence_file(const char *n) {
    return strncasecmp(n, "license", 7) == 0 || strncasecmp(n, "licence", 7) == 0 ||
           strncasecmp(n, "use_policy", 10) == 0 || strncasecmp(n, "use-policy", 10) == 0 ||
           strncasecmp(n, "acceptable_use", 14) == 0 || strncasecmp(n, "acceptable-use", 14) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static owl_status detect_dir(const char *dir, owl_license_report *out) {
    DIR *d = opendir(dir);
    if (!d) return owl_errorf(OWL_ERR_IO, "%s: cannot open directory", dir);
    char **names = NULL;
    size_t n = 0;
    owl_status st = OWL_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!(strcmp(e->d_name, "README.md") == 0 || is_licence_file(e->d_name))) continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn || !(nn[n] = dup_str(e->d_name))) {
            if (nn) names = nn;
            st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && st == OWL_OK; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *p = malloc(len);
        if (!p) {
            st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        snprintf(p, len, "%s/%s", dir, names[i]);
        if (owl_is_dir(p)) {
            free(p);
            continue;
        }
        st = strcmp(names[i], "README.md") == 0 ? card_source(out, p, names[i]) : text_source(out, p, names[i]);
        free(p);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

owl_status owl_license_detect(const char *path, owl_license_report *out) {
    memset(out, 0, sizeof *out);
    owl_status st;
    if (owl_is_dir(path)) {
        st = detect_dir(path, out);
        if (st == OWL_OK) st = derived_source(out, path);
    } else {
        FILE *f = fopen(path, "rb");
        if (!f) return owl_errorf(OWL_ERR_IO, "%s: cannot open", path);
        char head[4] = {0};
        size_t got = fread(head, 1, 4, f);
        fclose(f);
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (got == 4 && memcmp(head, "GGUF", 4) == 0) {
            owl_weights ws;
            st = owl_gguf_read(path, &ws);
            if (st == OWL_OK) {
                st = meta_source(base, &ws.meta, out);
                owl_weights_free(&ws);
            }
            if (st == OWL_OK) st = derived_source(out, path);
        } else if (got >= 3 && memcmp(head, "---", 3) == 0) {
            st = card_source(out, path, base);
        } else {
            st = text_source(out, path, base);
        }
    }
    if (st) {
        owl_license_report_free(out);
        return st;
    }
    decide(out);
    return OWL_OK;
}
