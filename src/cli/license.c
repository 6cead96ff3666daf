/* owl license: what a model's licence allows. */
#include "cli/args.h"
#include "cli/govern_cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "license";

static void license_help(FILE *f) {
    fprintf(f, "usage: owl license MODEL [--json]\n"
               "\n"
               "Finds the licence of MODEL and prints what it allows. MODEL is a GGUF file\n"
               "(general.license keys), a model directory (README.md front matter and\n"
               "LICENSE*, USE_POLICY* files, recognised by their text), a model card or a\n"
               "licence file. A text that differs from every published copy owl knows, a\n"
               "card without a known licence, or sources that disagree give \"unknown\":\n"
               "owl never guesses.\n"
               "\n"
               "      --json             machine-readable output\n"
               "      --fingerprint FILE print the fingerprints of FILE's text (to add a\n"
               "                         published copy to owl's table)\n"
               "  -h, --help             this text\n"
               "\n"
               "Exit status: 0 when the licence was determined or found unknown, 1 when\n"
               "MODEL cannot be read, 2 usage error.\n");
}

static json_t *info_json(const owl_license_info *li) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(li->id));
    json_object_set_new(o, "name", json_string(li->name));
    json_object_set_new(o, "policy", json_boolean(li->policy));
    json_object_set_new(o, "commercial_use", json_string(owl_term_name(li->commercial)));
    json_object_set_new(o, "redistribution", json_string(owl_term_name(li->redistribution)));
    json_object_set_new(o, "derivatives", json_string(owl_term_name(li->derivatives)));
    json_object_set_new(o, "attribution_required", json_boolean(li->attribution));
    json_object_set_new(o, "naming_requirement", li->naming ? json_string(li->naming) : json_null());
    json_object_set_new(o, "use_restrictions", json_boolean(li->use_restrictions));
    json_object_set_new(o, "user_threshold", li->user_threshold ? json_string(li->user_threshold) : json_null());
    json_object_set_new(o, "osi_approved", json_boolean(li->osi));
    json_object_set_new(o, "open_weight", json_boolean(li->open_weight));
    json_object_set_new(o, "text_verified", json_boolean(li->text_known));
    json_object_set_new(o, "basis", json_string(li->clause));
    return o;
}

static const char *kind_name(owl_license_source_kind k) {
    return k == OWL_LIC_SRC_GGUF     ? "gguf"
           : k == OWL_LIC_SRC_CARD   ? "model card"
           : k == OWL_LIC_SRC_SOURCE ? "source model"
                                     : "licence text";
}

json_t *cli_license_json(const owl_license_report *r) {
    json_t *o = json_object();
    json_object_set_new(o, "license", r->license ? info_json(r->license) : json_string("unknown"));
    json_object_set_new(o, "conflict", json_boolean(r->conflict));
    if (!r->license) json_object_set_new(o, "note", json_string(r->note));
    json_t *srcs = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const owl_license_source *s = &r->src[i];
        json_t *so = json_object();
        json_object_set_new(so, "kind", json_string(kind_name(s->kind)));
        json_object_set_new(so, "file", json_string(s->where));
        if (s->declared) json_object_set_new(so, "declared", json_string(s->declared));
        if (s->link) json_object_set_new(so, "link", json_string(s->link));
        json_object_set_new(so, "id", json_string(s->match.info ? s->match.info->id : "unknown"));
        if (s->match.variant) json_object_set_new(so, "variant", json_string(s->match.variant));
        if (s->match.resembles) json_object_set_new(so, "resembles", json_string(s->match.resembles->id));
        if (s->match.reason[0]) json_object_set_new(so, "note", json_string(s->match.reason));
        if (s->error) json_object_set_new(so, "error", json_string(s->error));
        json_array_append_new(srcs, so);
    }
    json_object_set_new(o, "sources", srcs);
    return o;
}

void cli_license_print(FILE *f, const owl_license_report *r) {
    const owl_license_info *li = r->license;
    if (!li) {
        fprintf(f, "licence:           unknown (%s)\n", r->note);
    } else {
        fprintf(f, "licence:           %s (%s)\n", li->id, li->name);
        fprintf(f, "  commercial use:  %s\n", owl_term_name(li->commercial));
        fprintf(f, "  redistribution:  %s\n", owl_term_name(li->redistribution));
        fprintf(f, "  derivatives:     %s\n", owl_term_name(li->derivatives));
        fprintf(f, "  attribution:     %s\n", li->attribution ? "required" : "not required");
        fprintf(f, "  naming:          %s\n", li->naming ? li->naming : "none");
        fprintf(f, "  use restrictions: %s\n", li->use_restrictions ? "yes" : "no");
        fprintf(f, "  user threshold:  %s\n", li->user_threshold ? li->user_threshold : "none");
        fprintf(f, "  OSI approved:    %s\n", li->osi ? "yes" : "no");
        fprintf(f, "  open weight:     %s\n", li->open_weight ? "yes" : "no");
        if (!li->text_known) fprintf(f, "  (owl has no copy of this licence's text: attributes unverified)\n");
        fprintf(f, "  basis:           %s\n", li->clause);
    }
    if (r->n == 0) fprintf(f, "sources:           none\n");
    for (size_t i = 0; i < r->n; i++) {
        const owl_license_source *s = &r->src[i];
        fprintf(f, "%s %s (%s): ", i == 0 ? "sources:          " : "                  ", s->where,
                kind_name(s->kind));
        if (s->error) fprintf(f, "unreadable: %s\n", s->error);
        else {
            if (s->declared) fprintf(f, "%s -> ", s->declared);
            if (s->match.info)
                fprintf(f, "%s%s%s%s", s->match.info->id, s->match.variant ? " [" : "",
                        s->match.variant ? s->match.variant : "", s->match.variant ? "]" : "");
            else fprintf(f, "unknown");
            if (s->match.reason[0]) fprintf(f, " (%s)", s->match.reason);
            fputc('\n', f);
        }
    }
}

int cli_license(int argc, char **argv) {
    const char *model = NULL, *fingerprint = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            license_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--fingerprint") == 0) {
            if (!(fingerprint = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (!model) {
            model = a;
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    if (fingerprint) {
        size_t n;
        char *text = cli_read_text(CMD, "text", fingerprint, &n);
        if (!text) return CLI_EXIT_RUNTIME;
        char *fp;
        if (owl_license_fingerprints(fingerprint, (const uint8_t *)text, n, &fp)) {
            free(text);
            return cli_error(CMD, "%s", owl_last_error());
        }
        fputs(fp, stdout);
        free(fp);
        free(text);
        return CLI_EXIT_OK;
    }
    if (!model) return cli_usage_error(CMD, "no MODEL given");
    const char *given = model;
    if (!(model = cli_model_resolve(CMD, model, true)) || !cli_model_path_ok(CMD, model)) return CLI_EXIT_RUNTIME;
    owl_license_report r;
    if (owl_license_detect(model, &r)) return cli_error(CMD, "%s", owl_last_error());
    if (model != given && r.n == 0) { /* a store snapshot without card or licence file: its GGUF file's keys */
        const char *file = cli_model_resolve(CMD, given, false);
        if (!file) {
            owl_license_report_free(&r);
            return CLI_EXIT_RUNTIME;
        }
        if (!owl_is_dir(file)) {
            owl_license_report_free(&r);
            if (owl_license_detect(file, &r)) return cli_error(CMD, "%s", owl_last_error());
        }
    }
    if (json) {
        json_t *o = cli_license_json(&r);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        cli_license_print(stdout, &r);
    }
    owl_license_report_free(&r);
    return CLI_EXIT_OK;
}

int cli_policy_enforce(const char *cmd, const char *policy_path, const char *model) {
    if (!(model = cli_model_resolve(cmd, model, false))) return CLI_EXIT_RUNTIME;
    owl_policy *p;
    if (owl_policy_load(policy_path, &p)) return cli_error(cmd, "%s", owl_last_error());
    owl_status st = owl_policy_check(p, model);
    owl_policy_free(p);
    if (st == OWL_ERR_RANGE) return cli_error(cmd, "refused by policy: %s", owl_last_error());
    if (st) return cli_error(cmd, "%s", owl_last_error());
    return 0;
}
