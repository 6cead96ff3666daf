/* store/: the local model store and pulling from a Hugging Face-compatible
 * endpoint.
 *
 * The layout is the Hugging Face hub cache's, so tools that read that cache
 * find owl's downloads and the other way round:
 *
 *   ROOT/models--ORG--NAME/blobs/<sha256>              file contents, once
 *   ROOT/models--ORG--NAME/snapshots/<commit>/<file>   -> ../../blobs/<sha256>
 *   ROOT/models--ORG--NAME/refs/<revision>             the commit id
 *
 * ROOT is $OWL_STORE, else $HF_HUB_CACHE, else $HOME/.cache/huggingface/hub.
 * Downloads go to blobs/<key>.incomplete and resume from where they stopped
 * (HTTP Range); a file whose SHA-256 differs from the one the hub lists
 * (its LFS sha256) is deleted and the pull fails naming it. */
#ifndef OWL_STORE_H
#define OWL_STORE_H

#include "base/base.h"

/* The store root (static buffer). */
const char *owl_store_root(void);

typedef void (*owl_pull_progress)(void *ud, const char *file, uint64_t done, uint64_t total);

typedef struct owl_pull_opts {
    const char *endpoint; /* NULL: $HF_ENDPOINT or https://huggingface.co */
    const char *revision; /* NULL: "main" */
    const char *root;     /* NULL: owl_store_root() */
    const char *token;    /* NULL: $HF_TOKEN; sent as a Bearer token */
    owl_pull_progress progress;
    void *ud;
} owl_pull_opts;

/* Pulls every file of repo ("ORG/NAME") at a revision into the store;
 * snapshot (may be NULL) receives the malloc'd snapshot directory. */
owl_status owl_store_pull(const char *repo, const owl_pull_opts *opts, char **snapshot);

typedef struct owl_store_entry {
    char repo[256];      /* ORG/NAME */
    char revision[128];  /* a ref name */
    char commit[128];
    char snapshot[1024]; /* directory */
    uint64_t bytes;      /* bytes of the blobs the snapshot uses */
    int files;
} owl_store_entry;

/* Calls cb for every (repo, ref) in the store under root (NULL: default). */
owl_status owl_store_list(const char *root, void (*cb)(void *ud, const owl_store_entry *e), void *ud);
/* Removes a repo (all revisions, all blobs) from the store. */
owl_status owl_store_rm(const char *root, const char *repo);

/* ---- store names as MODEL arguments ---- */

/* True if s has the shape of a store name: ORG/NAME, optionally @REVISION
 * after NAME and /FILE (a path inside the snapshot) after that. */
bool owl_store_is_name(const char *s);

/* Resolves a store name to a path (malloc'd) under root (NULL: default):
 * the snapshot of REVISION (a ref under refs/, default main, or a commit
 * with a snapshot), and in it FILE if given; else, unless whole is set,
 * the model in the snapshot: the snapshot itself when it holds config.json
 * (a Hugging Face directory) or no GGUF file, its GGUF file when it holds
 * exactly one. Errors name the store root and say how to get the model
 * (owl pull), or list the GGUF files to choose from. */
owl_status owl_store_resolve(const char *root, const char *name, bool whole, char **path);

#endif
