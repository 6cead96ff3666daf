/* govern/: what a model's licence allows, policies that act on it, and the
 * integrity of model files.
 *
 * Licences are found in three places: GGUF metadata (general.license,
 * general.license.name, general.license.link), the YAML front matter of a
 * Hugging Face model card (README.md: license, license_name, license_link)
 * and licence files (LICENSE, LICENSE.txt, LICENSE.md, USE_POLICY.md, ...).
 * Licence files are recognised by their text only: the text is normalised
 * (case, whitespace, quotes, CRLF, markdown markup, a mirror's leading
 * "[For the original ... see URL]" line) and the part between a licence's
 * first and last phrase must have exactly the fingerprint (SHA-256) of a
 * published copy. Anything else - a removed section, an added clause, a
 * changed number - is "unknown", never a near guess. */
#ifndef OWL_GOVERN_H
#define OWL_GOVERN_H

#include "base/base.h"
#include "format/format.h"

/* ---- the licence table (license_table.c) ---- */

typedef enum owl_term {
    OWL_TERM_UNKNOWN = 0,
    OWL_TERM_YES,         /* allowed, at most notice / attribution duties */
    OWL_TERM_CONDITIONAL, /* allowed under a further condition (use restrictions
                             passed on, non-commercial scope, MAU threshold,
                             naming duty, ShareAlike) */
    OWL_TERM_NO,          /* not granted */
    OWL_TERM_NA,          /* a policy: grants nothing, only restricts */
} owl_term;

typedef struct owl_license_info {
    const char *id;           /* SPDX id or a stable name ("llama3.1-community") */
    const char *name;         /* human name */
    bool policy;              /* an acceptable/prohibited use policy, not a licence */
    owl_term commercial;      /* commercial use */
    owl_term redistribution;  /* redistributing the weights */
    owl_term derivatives;     /* fine-tunes and other derivatives */
    bool attribution;         /* notice / attribution required */
    const char *naming;       /* naming duty, NULL if none */
    bool use_restrictions;    /* field-of-use restrictions apply */
    const char *user_threshold; /* "700M MAU", NULL if none */
    bool osi;                 /* OSI-approved licence */
    bool open_weight;         /* meets the Open Weight Definition's criteria (see the table) */
    bool text_known;          /* owl can recognise its text */
    const char *clause;       /* the clause(s) the attributes rest on */
} owl_license_info;

/* The table entry for an id (case-sensitive), or NULL. */
const owl_license_info *owl_license_find(const char *id);
/* Entry i of the table (NULL past the end). */
const owl_license_info *owl_license_at(size_t i);
/* A model card / GGUF licence tag ("apache-2.0", "llama3.1", "gemma",
 * "openrail++", "other" + name "mrl", ...) -> table entry, or NULL when the
 * tag names no licence owl knows ("unknown", "other" without a name, ...).
 * name may be NULL. */
const owl_license_info *owl_license_from_tag(const char *tag, const char *name);
const char *owl_term_name(owl_term t); /* "yes", "conditional", "no", "n/a", "unknown" */

/* ---- licence texts (license_text.c) ---- */

typedef struct owl_license_match {
    const owl_license_info *info; /* NULL: unknown */
    const char *variant;          /* which published copy ("last modified 2024-04-01") */
    const owl_license_info *resembles; /* unknown, but starts/ends like this one */
    char reason[160];             /* why unknown, when it is */
} owl_license_match;

/* Classifies a licence text. Fails (OWL_ERR_FORMAT, naming `name`) only when
 * the bytes are not text: binary, invalid UTF-8 (e.g. Latin-1), broken
 * UTF-16. UTF-8 with or without BOM and UTF-16 with a BOM are read. */
owl_status owl_license_classify_text(const char *name, const uint8_t *data, size_t size, owl_license_match *out);
/* The normalised text (malloc'd) the matcher works on; for tools and tests. */
owl_status owl_license_normalize(const char *name, const uint8_t *data, size_t size, char **out, size_t *out_len);
/* For every table text whose first and last phrase occur in the text: its
 * id and the fingerprint of the text between them (16 hex digits), one per
 * line, into a malloc'd string. Used to add a published copy to the table. */
owl_status owl_license_fingerprints(const char *name, const uint8_t *data, size_t size, char **out);

/* ---- model card front matter (frontmatter.c) ---- */

typedef struct owl_frontmatter {
    char *license;      /* NULL when absent; "" never (empty is an error) */
    char *license_name;
    char *license_link;
    bool license_is_list; /* license: was a list (several licences) */
    bool present;       /* the card has front matter at all */
} owl_frontmatter;

/* Parses the YAML front matter of a model card (the subset cards use: block
 * mappings and sequences, plain / quoted / block scalars, flow collections).
 * Broken YAML fails with OWL_ERR_FORMAT naming the file and line. A card
 * without front matter gives present = false. */
owl_status owl_frontmatter_parse(const char *name, const char *text, size_t len, owl_frontmatter *out);
void owl_frontmatter_free(owl_frontmatter *fm);

/* ---- a model's licence (license_detect.c) ---- */

typedef enum owl_license_source_kind {
    OWL_LIC_SRC_GGUF,  /* general.license keys */
    OWL_LIC_SRC_CARD,  /* README.md front matter */
    OWL_LIC_SRC_TEXT,  /* a licence file */
    OWL_LIC_SRC_SOURCE, /* carried over from the model this one was made from (owl.manifest.json) */
} owl_license_source_kind;

typedef struct owl_license_source {
    owl_license_source_kind kind;
    char *where;          /* file name (and key) */
    char *declared;       /* the tag / name as written (GGUF, card) */
    char *link;           /* license_link / general.license.link */
    owl_license_match match;
    char *error;          /* could not be read or parsed (then match is unknown) */
} owl_license_source;

typedef struct owl_license_report {
    owl_license_source *src;
    size_t n;
    /* The model's licence: the licence texts' verdict, else the card's, else
     * GGUF's; NULL (unknown) when nothing names a known licence or two
     * sources name different licences (conflict set). Policies (AUPs) found
     * beside a licence are listed in src but never become the licence. */
    const owl_license_info *license;
    bool conflict;
    char note[256];       /* why unknown / which sources conflict */
} owl_license_report;

/* Detects the licence of a GGUF file (its metadata) or a directory (model
 * card, licence files, and any *.gguf in it is not read). Unreadable single
 * sources are recorded in the report, not failures; fails only when path
 * itself cannot be read. */
owl_status owl_license_detect(const char *path, owl_license_report *out);
/* The same from a metadata dictionary already read. */
owl_status owl_license_detect_meta(const char *name, const owl_meta *meta, owl_license_report *out);
void owl_license_report_free(owl_license_report *r);

/* ---- policies (policy.c; the format is described there) ---- */

typedef struct owl_policy owl_policy;
/* Reads a policy file (JSON); unknown keys, wrong types and bad digests are
 * errors naming the file and the key. */
owl_status owl_policy_load(const char *path, owl_policy **out);
void owl_policy_free(owl_policy *p);
/* OWL_OK when the policy lets the model (file or directory) be loaded;
 * OWL_ERR_RANGE when a rule refuses it, the error text naming the policy
 * file, the rule and why ("policy.json: rule deny_licenses: model licence
 * CC-BY-NC-4.0 is denied"); other codes when the model cannot be read. */
owl_status owl_policy_check(const owl_policy *p, const char *model);

/* ---- integrity manifests (manifest.c) ---- */

/* Records size and SHA-256 in owl.manifest.json beside the model: for a
 * file, its entry (merged into the manifest of its directory); for a
 * directory, every regular file in it. Atomic. Call it after writing a
 * model file. */
owl_status owl_manifest_write(const char *path);
/* Called for each file that matched. */
typedef void (*owl_verify_cb)(void *ud, const char *name, uint64_t size, const char *sha256);
/* Checks a model file (its entry) or directory (every entry) against
 * owl.manifest.json, or else a sha256sum list (SHA256SUMS, sha256sums.txt);
 * shards named by model.safetensors.index.json must exist. Stops at the
 * first difference: the error names the file, the digest or size found and
 * the one listed; a listed file that is missing is named too. */
owl_status owl_manifest_verify(const char *path, owl_verify_cb cb, void *ud);

/* ---- provenance of written models (provenance.c) ---- */

/* The digest of a model: a file's SHA-256; a directory's is the SHA-256 of
 * its sha256sum-style list, "<sha256>  <relative path>\n" for each regular
 * file (links followed, sorted by path, dot files and owl.manifest.json
 * left out). */
owl_status owl_model_digest(const char *path, char hex[65]);
/* After writing a model derived from source (owl convert, owl quantize,
 * owl lora merge): records out as owl_manifest_write does, and with it the
 * source's path, digest and licence (detected now) and the tool's name
 * ("owl quantize"). owl verify then checks out; owl_license_detect reports
 * the carried licence for out. */
owl_status owl_manifest_write_derived(const char *out, const char *source, const char *tool);

typedef struct owl_model_source {
    bool present;      /* the manifest records a source for this model */
    char path[1024];   /* as recorded */
    char sha256[65];   /* the source's digest */
    char license[64];  /* licence id; "" when it was unknown */
    char note[256];    /* why unknown */
} owl_model_source;
/* The source recorded for a model (a file: its entry in the owl.manifest.json
 * beside it, if the size still matches; a directory: its manifest's top).
 * present = false when there is none; errors when the manifest is broken. */
owl_status owl_manifest_source(const char *path, owl_model_source *out);

/* ---- SHA-256 (sha256.c) ---- */

/* Hex digest (65 bytes with NUL) of a whole file, streamed. */
owl_status owl_sha256_file(const char *path, char hex[65]);
owl_status owl_sha256_mem(const void *data, size_t size, char hex[65]);
/* Git's blob id of a file: SHA-1 of "blob SIZE\0" + contents (the name the
 * Hugging Face cache gives the blob of a file not stored in LFS). */
owl_status owl_git_blob_sha1_file(const char *path, char hex[41]);

#endif
