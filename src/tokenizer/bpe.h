/* Internals of the BPE tokenizer (bpe.c, bpe_encode.c, pretokenize.c,
 * normalize.c, tokenizer_json.c, bpe_meta.c): merge ranks keyed by a pair of
 * ids, the GPT-2 byte alphabet, pre-tokenizer steps, normalizers and added
 * tokens. Only tokenizer/ includes this header. */
#ifndef OWL_BPE_H
#define OWL_BPE_H

#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- strings split into pieces ---- */

/* A list of pieces, each a byte range of buf. */
typedef struct owl_pieces {
    char *buf;
    size_t blen, bcap;
    size_t *off, *len;
    size_t n, cap;
} owl_pieces;

owl_status owl_pieces_add(owl_pieces *p, const char *s, size_t len);
/* Appends bytes to the last piece (which must exist). */
owl_status owl_pieces_append(owl_pieces *p, const char *s, size_t len);
void owl_pieces_clear(owl_pieces *p);
void owl_pieces_free(owl_pieces *p);

/* ---- pre-tokenizer ---- */

typedef enum owl_split_behavior {
    OWL_SPLIT_REMOVED,
    OWL_SPLIT_ISOLATED,
    OWL_SPLIT_MERGED_PREV,
    OWL_SPLIT_MERGED_NEXT,
    OWL_SPLIT_CONTIGUOUS,
} owl_split_behavior;

typedef enum owl_pre_kind {
    OWL_PRE_SPLIT,     /* regex or literal, with a behavior */
    OWL_PRE_PREFIX,    /* ByteLevel add_prefix_space: ' ' before pieces that lack one */
    OWL_PRE_METASPACE, /* ' ' -> replacement, optional replacement before the text */
} owl_pre_kind;

enum { OWL_PREPEND_NEVER = 0, OWL_PREPEND_FIRST = 1, OWL_PREPEND_ALWAYS = 2 };

typedef struct owl_pre_step {
    owl_pre_kind kind;
    pcre2_code *re;         /* SPLIT with a regex */
    char *lit;              /* SPLIT with a literal string; METASPACE replacement */
    size_t lit_len;
    owl_split_behavior behavior;
    bool invert;
    int prepend; /* METASPACE: OWL_PREPEND_* */
} owl_pre_step;

/* Compiles a regex (UTF, UCP, invalid UTF-8 never matches, JIT when
 * available). `what` names the field for the error text. */
owl_status owl_regex_compile(const char *pattern, size_t len, const char *what, pcre2_code **out);
/* The pre-tokenizer regexes named by GGUF's tokenizer.ggml.pre, NULL-ended
 * list of patterns; NULL if the name is unknown. */
const char *const *owl_pre_regexes(const char *name, size_t len, bool *individual_digits);
extern const char owl_regex_gpt2[];
/* The name of the table entry whose regexes are exactly these, NULL if none. */
const char *owl_pre_name_of(const char *const *patterns, int n);

/* Applies the steps to one stretch of (normalized) text. at_start: the
 * stretch begins the whole text (Metaspace prepend_scheme "first"). */
owl_status owl_pretokenize(const struct owl_bpe *b, const char *s, size_t n, bool at_start, owl_pieces *out);

/* ---- normalizer ---- */

typedef enum owl_norm_kind {
    OWL_NORM_NFC,
    OWL_NORM_NFD,
    OWL_NORM_NFKC,
    OWL_NORM_NFKD,
    OWL_NORM_LOWERCASE,
    OWL_NORM_STRIP,
    OWL_NORM_PREPEND,
    OWL_NORM_REPLACE,
} owl_norm_kind;

typedef struct owl_norm_step {
    owl_norm_kind kind;
    bool left, right;       /* STRIP */
    char *str;              /* PREPEND text; REPLACE literal pattern */
    size_t str_len;
    pcre2_code *re;         /* REPLACE regex pattern */
    char *content;          /* REPLACE replacement */
    size_t content_len;
} owl_norm_step;

struct owl_norm {
    owl_norm_step *steps;
    int n, cap;
    owl_arena arena; /* the steps' strings */
};

owl_status owl_norm_add(struct owl_norm *nm, const owl_norm_step *step);
/* Normalizes s into *out (malloc'd, *out_len bytes). Text that is not valid
 * UTF-8 skips the Unicode normal forms and Lowercase. */
owl_status owl_normalize(const struct owl_norm *nm, const char *s, size_t n, char **out, size_t *out_len);

/* ---- added tokens ---- */

typedef struct owl_added {
    int32_t id;
    const char *text; /* the token's piece in the vocabulary */
    size_t len;
    bool special, lstrip, rstrip, single_word, normalized;
} owl_added;

/* Hash of added-token texts, computed one byte at a time so that all
 * prefixes of a text hash in one pass (FNV-1a, 64-bit). */
static inline uint64_t owl_added_hash_init(void) { return 0xcbf29ce484222325ull; }
static inline uint64_t owl_added_hash_step(uint64_t h, uint8_t c) { return (h ^ c) * 0x100000001b3ull; }

/* ---- the BPE state ---- */

struct owl_bpe {
    bool byte_level;    /* pieces use the GPT-2 byte alphabet */
    bool byte_fallback; /* unknown characters become <0xXX> tokens */
    bool ignore_merges; /* a pre-token found whole in the vocabulary is one token */
    bool fuse_unk;
    int32_t byte_ids[256]; /* byte_level: id of the single-character piece of each byte */
    int32_t fallback_ids[256]; /* byte_fallback: ids of <0xXX>, -1 if absent */

    /* merges: open addressing on (left id << 32 | right id) */
    uint64_t *mkey;  /* key + 1 would collide at 0; empty slots have mrank == UINT32_MAX */
    uint32_t *mrank;
    int32_t *mres;
    uint32_t mmask;
    size_t n_merges;

    owl_pre_step *pre;
    int n_pre, cap_pre;

    owl_added *added;
    int n_added;
    uint32_t *added_slots; /* hash of added texts: index + 1 */
    uint32_t added_mask;
    uint8_t *added_lens[256]; /* per first byte: distinct lengths, descending, 0-ended */
    uint8_t *is_added;        /* per id */
    size_t added_max_len;
    int n_added_normalized;   /* added tokens with normalized = true */

    /* decoder */
    bool dec_byte_level;
    bool dec_byte_fallback;
    char dec_space[8]; /* this string decodes as ' ' ("▁"), empty if none */
    size_t dec_space_len;
    int dec_strip; /* leading spaces removed from the decoded text */

    /* SentencePiece-style text may be cut before a dec_space ('▁') that
     * follows another character, unless that character is in cut_block
     * (some piece holds it followed by '▁'): no merge can cross such a cut,
     * so pieces stay short (same result, faster). */
    bool cut_at_space;
    uint32_t cut_block[16];
    int n_cut_block;

    bool no_cache; /* tests: encode every pre-token (no per-call cache) */

    /* The regexes of the pre-tokenizer in order (tokenizer.json), and the
     * GGUF tokenizer.ggml.pre name they amount to ("" if none matches). */
    const char *pre_patterns[8];
    int n_pre_patterns; /* > 8: too many to name */
    char pre_name[32];

    char *chat_template;
    owl_arena arena;
};

/* Decodes the UTF-8 character that ends just before s[end] (start >= 0);
 * returns its code point (0xFFFFFFFF if invalid) and sets *start. */
uint32_t owl_utf8_prev(const char *s, size_t end, size_t *start);

struct owl_bpe *owl_bpe_new(void);
/* Adds a pre-tokenizer step (copied; takes ownership of re). */
owl_status owl_bpe_add_pre(struct owl_bpe *b, const owl_pre_step *step);
/* Resolves the merges (pairs of pieces; rank = index) to ids. Needs the
 * vocabulary. `what` names the field for errors. */
owl_status owl_bpe_set_merges(owl_tokenizer *tok, size_t n, const owl_str *left, const owl_str *right,
                              const char *what);
/* Fills byte_ids / fallback_ids from the vocabulary; checks that a
 * byte-level vocabulary has all 256 byte pieces. */
owl_status owl_bpe_finish(owl_tokenizer *tok, const char *what);
/* Indexes the added tokens (b->added, b->n_added set) and sets
 * tok->specials to the special ones, longest first. */
owl_status owl_bpe_index_added(owl_tokenizer *tok);
/* The GPT-2 byte alphabet: code point of byte b, and back (-1 if none). */
uint32_t owl_bpe_byte_char(uint8_t b);
int owl_bpe_char_byte(uint32_t cp);
/* Appends the UTF-8 of a code point; returns bytes written (<= 4). */
size_t owl_utf8_put(uint32_t cp, char *out);
/* Frees everything a partly built tokenizer holds (for the loaders). */
void owl_bpe_tokenizer_destroy(owl_tokenizer *tok);

#endif
