/* Policies: which models an organisation lets owl load, decided from the
 * model's licence and the digests of its files before the weights are read.
 *
 * A policy is a JSON object; every key is optional, unknown keys are errors:
 *
 *   {
 *     "allow": ["commercial", "redistribution", "derivatives"],
 *         uses the organisation needs: the licence must grant each (yes, or
 *         conditional unless "conditional_ok" is false)
 *     "conditional_ok": true,
 *     "deny_licenses": ["CC-BY-NC-4.0", "llama2-community"],
 *     "allow_licenses": ["Apache-2.0", "MIT"],     only these (when given)
 *     "require_known_license": true,               unknown licence refused
 *     "deny_use_restrictions": false,              licences with field-of-use
 *                                                  restrictions refused
 *     "require_osi": false,
 *     "require_open_weight": false,
 *     "pinned_digests": {"model.gguf": "<sha256 hex>"}
 *         when given, every file of the model (the file itself, or each file
 *         of a directory, by name) must be listed with its SHA-256
 *   }
 *
 * Rules are checked in that order after the digests; the first one broken
 * refuses the model with "POLICY: rule NAME: why". */
#include "govern/govern.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct pin {
    char *file;
    char sha[65];
} pin;

struct owl_policy {
    char *name; /* the policy file's base name, for messages */
    bool need_commercial, need_redistribution, need_derivatives, conditional_ok;
    char **deny, **only;
    size_t n_deny, n_only;
    bool has_only, require_known, deny_restrictions, require_osi, require_open_weight;
    pin *pins;
    size_t n_pins;
    bool has_pins;
};

void owl_policy_free(owl_policy *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_deny; i++) free(p->deny[i]);
    for (size_t i = 0; i < p->n_only; i++) free(p->only[i]);
    for (size_t i = 0; i < p->n_pins; i++) free(p->pins[i].file);
    free(p->deny);
    free(p->only);
    free(p->pins);
    free(p->name);
    free(p);
}

static owl_status bool_key(const char *path, json_t *v, const char *key, bool *out) {
    if (!json_is_boolean(v)) return owl_errorf(OWL_ERR_FORMAT, "%s: \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return OWL_OK;
}

static owl_status str_list(const char *path, json_t *v, const char *key, char ***out, size_t *n) {
    if (!json_is_array(v)) return owl_errorf(OWL_ERR_FORMAT, "%s: \"%s\" must be a list of strings", path, key);
    size_t k = json_array_size(v);
    *out = owl_calloc(k ? k : 1, sizeof **out);
    if (!*out) return OWL_ERR_NOMEM;
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e) || !*json_string_value(e))
            return owl_errorf(OWL_ERR_FORMAT, "%s: \"%s\" item %zu is not a non-empty string", path, key, i);
        (*out)[i] = strdup(json_string_value(e));
        if (!(*out)[i]) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
        (*n)++;
    }
    return OWL_OK;
}

static owl_status parse_policy(const char *path, json_t *root, owl_policy *p) {
    if (!json_is_object(root)) return owl_errorf(OWL_ERR_FORMAT, "%s: a policy must be a JSON object", path);
    const char *key;
    json_t *v;
    owl_status st = OWL_OK;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "allow") == 0) {
            if (!json_is_array(v)) return owl_errorf(OWL_ERR_FORMAT, "%s: \"allow\" must be a list", path);
            for (size_t i = 0; i < json_array_size(v); i++) {
                const char *u = json_string_value(json_array_get(v, i));
                if (u && strcmp(u, "commercial") == 0) p->need_commercial = true;
                else if (u && strcmp(u, "redistribution") == 0) p->need_redistribution = true;
                else if (u && strcmp(u, "derivatives") == 0) p->need_derivatives = true;
                else
                    return owl_errorf(OWL_ERR_FORMAT,
                                      "%s: \"allow\" item %zu: '%s' is not one of commercial, redistribution, derivatives",
                                      path, i, u ? u : "(not a string)");
            }
        } else if (strcmp(key, "conditional_ok") == 0) st = bool_key(path, v, key, &p->conditional_ok);
        else if (strcmp(key, "deny_licenses") == 0) st = str_list(path, v, key, &p->deny, &p->n_deny);
        else if (strcmp(key, "allow_licenses") == 0) {
            p->has_only = true;
            st = str_list(path, v, key, &p->only, &p->n_only);
        } else if (strcmp(key, "require_known_license") == 0) st = bool_key(path, v, key, &p->require_known);
        else if (strcmp(key, "deny_use_restrictions") == 0) st = bool_key(path, v, key, &p->deny_restrictions);
        else if (strcmp(key, "require_osi") == 0) st = bool_key(path, v, key, &p->require_osi);
        else if (strcmp(key, "require_open_weight") == 0) st = bool_key(path, v, key, &p->require_open_weight);
        else if (strcmp(key, "pinned_digests") == 0) {
            if (!json_is_object(v))
                return owl_errorf(OWL_ERR_FORMAT, "%s: \"pinned_digests\" must be an object {file: sha256}", path);
            p->has_pins = true;
            size_t k = json_object_size(v);
            p->pins = owl_calloc(k ? k : 1, sizeof *p->pins);
            if (!p->pins) return OWL_ERR_NOMEM;
            const char *file;
            json_t *d;
            json_object_foreach(v, file, d) {
                const char *hex = json_string_value(d);
                bool ok = hex && strlen(hex) == 64;
                for (size_t i = 0; ok && i < 64; i++) ok = strchr("0123456789abcdefABCDEF", hex[i]) != NULL;
                if (!ok)
                    return owl_errorf(OWL_ERR_FORMAT, "%s: pinned_digests[\"%s\"] is not a SHA-256 (64 hex digits)",
                                      path, file);
                pin *q = &p->pins[p->n_pins];
                if (!(q->file = strdup(file))) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
                for (size_t i = 0; i < 64; i++) q->sha[i] = (char)(hex[i] | 0x20); /* lower case */
                q->sha[64] = 0;
                p->n_pins++;
            }
        } else {
            return owl_errorf(OWL_ERR_FORMAT, "%s: unknown key \"%s\" (see owl run --help for the policy format)",
                              path, key);
        }
        if (st) return st;
    }
    return OWL_OK;
}

owl_status owl_policy_load(const char *path, owl_policy **out) {
    *out = NULL;
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!root) return owl_errorf(OWL_ERR_FORMAT, "%s: line %d: %s", path, e.line, e.text);
    owl_policy *p = owl_calloc(1, sizeof *p);
    if (!p) {
        json_decref(root);
        return OWL_ERR_NOMEM;
    }
    p->conditional_ok = true;
    const char *base = strrchr(path, '/');
    p->name = strdup(base ? base + 1 : path);
    owl_status st = p->name ? parse_policy(path, root, p) : owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
    json_decref(root);
    if (st) {
        owl_policy_free(p);
        return st;
    }
    *out = p;
    return OWL_OK;
}

/* ---- checking ---- */

static owl_status refuse(const owl_policy *p, const char *rule, const char *fmt, const char *a, const char *b) {
    char why[400];
    snprintf(why, sizeof why, fmt, a, b);
    return owl_errorf(OWL_ERR_RANGE, "%s: rule %s: %s", p->name, rule, why);
}

static owl_status check_pin(const owl_policy *p, const char *path, const char *name) {
    const pin *q = NULL;
    for (size_t i = 0; i < p->n_pins; i++)
        if (strcmp(p->pins[i].file, name) == 0) q = &p->pins[i];
    if (!q) return refuse(p, "pinned_digests", "%s is not pinned%s", name, "");
    char hex[65];
    owl_status st = owl_sha256_file(path, hex);
    if (st) return st;
    if (strcmp(hex, q->sha) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "has sha256 %s, pinned %s", hex, q->sha);
        return refuse(p, "pinned_digests", "%s %s", name, msg);
    }
    return OWL_OK;
}

static owl_status check_pins(const owl_policy *p, const char *model) {
    if (!owl_is_dir(model)) {
        const char *base = strrchr(model, '/');
        return check_pin(p, model, base ? base + 1 : model);
    }
    DIR *d = opendir(model);
    if (!d) return owl_errorf(OWL_ERR_IO, "%s: cannot open directory", model);
    owl_status st = OWL_OK;
    struct dirent *e;
    while (st == OWL_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(model) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) {
            st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(path, len, "%s/%s", model, e->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) st = check_pin(p, path, e->d_name);
        free(path);
    }
    closedir(d);
    return st;
}

static owl_status check_use(const owl_policy *p, const owl_license_info *li, const char *use, owl_term t) {
    if (!li) return refuse(p, "allow", "the model's licence is unknown: %s cannot be confirmed%s", use, "");
    if (t == OWL_TERM_YES || (t == OWL_TERM_CONDITIONAL && p->conditional_ok)) return OWL_OK;
    char msg[160];
    snprintf(msg, sizeof msg, "%s under %s", t == OWL_TERM_CONDITIONAL ? "is only conditional" : "is not granted",
             li->id);
    return refuse(p, "allow", "%s %s", use, msg);
}

owl_status owl_policy_check(const owl_policy *p, const char *model) {
    owl_status st;
    if (p->has_pins && (st = check_pins(p, model))) return st;
    owl_license_report r;
    if ((st = owl_license_detect(model, &r))) return st;
    const owl_license_info *li = r.license;
    char note[300];
    snprintf(note, sizeof note, "%s", r.note);
    owl_license_report_free(&r);
    const char *id = li ? li->id : "unknown";
    if (p->require_known && !li) return refuse(p, "require_known_license", "the model's licence is unknown (%s)%s", note, "");
    for (size_t i = 0; i < p->n_deny; i++)
        if (strcmp(p->deny[i], id) == 0) return refuse(p, "deny_licenses", "model licence %s is denied%s", id, "");
    if (p->has_only) {
        bool ok = false;
        for (size_t i = 0; i < p->n_only; i++) ok |= strcmp(p->only[i], id) == 0;
        if (!ok) return refuse(p, "allow_licenses", "model licence %s is not in the allowed list%s", id, "");
    }
    if (p->need_commercial && (st = check_use(p, li, "commercial use", li ? li->commercial : OWL_TERM_UNKNOWN)))
        return st;
    if (p->need_redistribution &&
        (st = check_use(p, li, "redistribution", li ? li->redistribution : OWL_TERM_UNKNOWN)))
        return st;
    if (p->need_derivatives && (st = check_use(p, li, "derivatives", li ? li->derivatives : OWL_TERM_UNKNOWN)))
        return st;
    if (p->deny_restrictions && (!li || li->use_restrictions))
        return refuse(p, "deny_use_restrictions", "model licence %s %s", id,
                      li ? "restricts uses" : "is unknown, its use restrictions cannot be ruled out");
    if (p->require_osi && !(li && li->osi))
        return refuse(p, "require_osi", "model licence %s is not OSI-approved%s", id, "");
    if (p->require_open_weight && !(li && li->open_weight))
        return refuse(p, "require_open_weight", "model licence %s does not meet the Open Weight Definition%s", id, "");
    return OWL_OK;
}
