/* format/: readers and writers of model files. Every reader produces one
 * weights table (name -> dtype, shape, bytes in the mapping) plus a metadata
 * dictionary keyed like GGUF ("general.architecture", "llama.block_count",
 * "tokenizer.ggml.tokens", ...), whatever the file format was. */
#ifndef OWL_FORMAT_H
#define OWL_FORMAT_H

#include "base/base.h"
#include "tensor/tensor.h"

/* ---- metadata dictionary ---- */

/* Value types use GGUF's ids. */
typedef enum owl_meta_type {
    OWL_META_U8 = 0,
    OWL_META_I8 = 1,
    OWL_META_U16 = 2,
    OWL_META_I16 = 3,
    OWL_META_U32 = 4,
    OWL_META_I32 = 5,
    OWL_META_F32 = 6,
    OWL_META_BOOL = 7,
    OWL_META_STRING = 8,
    OWL_META_ARRAY = 9,
    OWL_META_U64 = 10,
    OWL_META_I64 = 11,
    OWL_META_F64 = 12,
    OWL_META_TYPE_COUNT = 13
} owl_meta_type;

/* A string with a length; not NUL-terminated when it points into a mapping. */
typedef struct owl_str {
    const char *ptr;
    size_t len;
} owl_str;

typedef struct owl_meta_value owl_meta_value;
struct owl_meta_value {
    owl_meta_type type;
    union {
        uint64_t u;   /* U8, U16, U32, U64, BOOL */
        int64_t i;    /* I8, I16, I32, I64 */
        double f;     /* F32, F64 */
        owl_str s;    /* STRING */
        struct {
            owl_meta_type elem;
            uint64_t count;
            /* elem numeric or BOOL: `raw` points at count little-endian
             * values of the element's size (zero-copy, may be unaligned);
             * elem STRING: strs[count]; elem ARRAY: items[count]. */
            const void *raw;
            owl_str *strs;
            owl_meta_value *items;
        } arr;
    };
};

typedef struct owl_meta_entry {
    owl_str key;
    owl_meta_value value;
} owl_meta_entry;

typedef struct owl_meta {
    owl_meta_entry *entries;
    size_t n, cap;
    owl_arena arena; /* strings and arrays the dictionary owns */
} owl_meta;

void owl_meta_free(owl_meta *m);
const owl_meta_value *owl_meta_find(const owl_meta *m, const char *key);
/* Typed getters: false if the key is missing or its value does not fit the
 * asked type (integer types convert when the value fits). */
bool owl_meta_get_u64(const owl_meta *m, const char *key, uint64_t *out);
bool owl_meta_get_i64(const owl_meta *m, const char *key, int64_t *out);
bool owl_meta_get_f64(const owl_meta *m, const char *key, double *out);
bool owl_meta_get_bool(const owl_meta *m, const char *key, bool *out);
bool owl_meta_get_str(const owl_meta *m, const char *key, owl_str *out);
/* Reads element i of a numeric array value as double / int64. */
double owl_meta_arr_f64(const owl_meta_value *v, uint64_t i);
int64_t owl_meta_arr_i64(const owl_meta_value *v, uint64_t i);
/* Key comparison helper. */
bool owl_str_eq(owl_str s, const char *c);

/* Setters copy key and value into the dictionary's arena (replacing an
 * existing key). Arrays: raw points at count values of the element type. */
owl_status owl_meta_set_u32(owl_meta *m, const char *key, uint32_t v);
owl_status owl_meta_set_u64(owl_meta *m, const char *key, uint64_t v);
owl_status owl_meta_set_i32(owl_meta *m, const char *key, int32_t v);
owl_status owl_meta_set_f32(owl_meta *m, const char *key, float v);
owl_status owl_meta_set_bool(owl_meta *m, const char *key, bool v);
owl_status owl_meta_set_str(owl_meta *m, const char *key, const char *s, size_t len);
owl_status owl_meta_set_arr(owl_meta *m, const char *key, owl_meta_type elem, const void *raw, uint64_t count);
owl_status owl_meta_set_str_arr(owl_meta *m, const char *key, const owl_str *strs, uint64_t count);
/* Deep-copies any value (nested arrays included) into the arena. */
owl_status owl_meta_set(owl_meta *m, const char *key, const owl_meta_value *v);
/* Name of a value type ("u32", "string", "array", ...; "?" if unknown). */
const char *owl_meta_type_name(owl_meta_type t);
/* Adds an entry without copying (the value points into a mapping that
 * outlives the dictionary). Used by readers. */
owl_status owl_meta_put(owl_meta *m, owl_str key, const owl_meta_value *v);
/* Like owl_meta_put but never looks for an existing key (fast; the caller
 * guarantees keys are unique, as the GGUF reader checks after reading). */
owl_status owl_meta_append(owl_meta *m, owl_str key, const owl_meta_value *v);

/* ---- weights table ---- */

#define OWL_MAX_DIMS 4

typedef struct owl_weight {
    const char *name;           /* NUL-terminated, owned by the table */
    owl_dtype dtype;
    int n_dims;
    int64_t ne[OWL_MAX_DIMS];   /* GGUF order: ne[0] varies fastest */
    const void *data;           /* in a mapping, or owned by the table */
    uint64_t nbytes;
} owl_weight;

typedef struct owl_weights {
    char *path;                 /* the file or directory read */
    char *format;               /* "gguf", "llama2c", ... */
    owl_weight *w;
    size_t n, cap;
    owl_meta meta;
    owl_mmap *maps;             /* files this table maps */
    size_t n_maps;
    owl_arena arena;            /* names and owned tensor data */
} owl_weights;

/* Starts an empty table: zeroes ws and copies path and format into its
 * arena (path and format are owned by the arena: never free() them; readers
 * call this first). */
owl_status owl_weights_init(owl_weights *ws, const char *path, const char *format);
void owl_weights_free(owl_weights *ws);
const owl_weight *owl_weights_find(const owl_weights *ws, const char *name);
/* Number of elements, product of ne. */
int64_t owl_weight_nelem(const owl_weight *w);
/* Adds a tensor (name copied). */
owl_status owl_weights_add(owl_weights *ws, const char *name, owl_dtype dtype, int n_dims,
                           const int64_t *ne, const void *data, uint64_t nbytes);
/* Takes ownership of a mapping (*m is zeroed); returns a pointer to the kept
 * copy (valid until the next keep_map; the mapped bytes never move). */
owl_status owl_weights_keep_map(owl_weights *ws, owl_mmap *m, const owl_mmap **kept);

/* ---- readers ---- */

/* Reads a GGUF file (v2, v3), mapped, zero-copy. Every count, length,
 * offset and size is checked against the file; errors name the file, the
 * key or tensor and the bad value. */
owl_status owl_gguf_read(const char *path, owl_weights *out);
/* Same from bytes in memory (not copied; must outlive `out`), for fuzzing.
 * `name` is used in error messages. */
owl_status owl_gguf_read_mem(const char *name, const uint8_t *data, size_t size, owl_weights *out);

/* Reads a llama2.c legacy checkpoint (.bin) and its tokenizer.bin (path may
 * be NULL: then tokenizer.bin beside the checkpoint). The table uses GGUF's
 * llama tensor names and keys (tokenizer.ggml.* filled from tokenizer.bin). */
owl_status owl_llama2c_read(const char *path, const char *tokenizer_path, owl_weights *out);
/* Reads a llama2.c tokenizer.bin alone into tokenizer.ggml.* keys of meta
 * (meta zeroed or already holding other keys). */
owl_status owl_llama2c_tokenizer_read(const char *path, owl_meta *meta);
owl_status owl_llama2c_tokenizer_read_mem(const char *name, const uint8_t *data, size_t size, owl_meta *meta);
/* Reads a SentencePiece tokenizer.model (protobuf ModelProto, BPE type) into
 * tokenizer.ggml.* keys of meta. _mem: from bytes (for fuzzing). */
owl_status owl_spm_model_read(const char *path, owl_meta *meta);
owl_status owl_spm_model_read_mem(const char *name, const uint8_t *data, size_t size, owl_meta *meta);

/* ---- safetensors (safetensors_read.c, safetensors_write.c) ---- */

/* Renames a tensor while a safetensors file is read: writes the table name
 * (NUL-terminated) into buf of cap bytes, or sets *skip to drop the tensor.
 * A failing status stops the read. */
typedef owl_status (*owl_st_rename_fn)(void *ud, const char *name, char *buf, size_t cap, bool *skip);
/* "F32", "F16", "BF16" -> dtype; false for any other safetensors dtype. */
bool owl_safetensors_dtype(const char *name, owl_dtype *out);
/* Reads one .safetensors file, mapped, zero-copy (an unaligned tensor is
 * copied). ne[] is the reversed shape (GGUF order). __metadata__ strings go
 * into out->meta under their own keys. format "safetensors". */
owl_status owl_safetensors_read(const char *path, owl_weights *out);
owl_status owl_safetensors_read_mem(const char *name, const uint8_t *data, size_t size, owl_weights *out);
/* A sharded checkpoint from its index (model.safetensors.index.json): every
 * file weight_map names, each tensor taken from the file the map gives. */
owl_status owl_safetensors_read_index(const char *index_path, owl_weights *out);
/* The same into an existing table, tensors renamed by rename (NULL: kept);
 * keep_meta: __metadata__ into ws->meta. */
owl_status owl_safetensors_add(owl_weights *ws, const char *path, owl_st_rename_fn rename, void *ud, bool keep_meta);
owl_status owl_safetensors_add_index(owl_weights *ws, const char *index_path, owl_st_rename_fn rename, void *ud);
/* Writes tensors (F32, F16, BF16; names sorted, data in that order) and the
 * string entries of metadata (may be NULL) as __metadata__, atomically; the
 * header is padded with spaces so the data starts 8-byte aligned. */
owl_status owl_safetensors_write(const char *path, const owl_weight *tensors, size_t n, const owl_meta *metadata);

/* ---- Hugging Face model directories (hf_dir.c) ---- */

/* Reads config.json, the safetensors weights (single or sharded) and the
 * tokenizer of a Hugging Face directory into GGUF-style keys and tensor
 * names (format "hf": Q/K rows are in rotate_half order, not permuted). */
owl_status owl_hf_dir_read(const char *dir, owl_weights *out);
/* Converts a Hugging Face directory to a GGUF file as llama.cpp lays it out
 * (keys, tensor names, Llama Q/K rows permuted to adjacent-pair RoPE);
 * matrices become type (F32, F16, BF16), vectors F32. Atomic. */
owl_status owl_hf_convert(const char *dir, const char *out_path, owl_dtype type);

/* Decides the format from the bytes / path and reads it. */
owl_status owl_weights_open(const char *path, const char *tokenizer_path, owl_weights *out);

/* ---- writers ---- */

/* Writes ws (its meta and tensors) as GGUF v3 to path atomically.
 * alignment 0: general.alignment from meta or 32. */
owl_status owl_gguf_write(const char *path, const owl_meta *meta, const owl_weight *tensors, size_t n_tensors,
                          uint32_t alignment);
/* The same, streaming: a tensor whose data is NULL (nbytes > 0) is asked of
 * fill(ud, i, &data) when the writer reaches it, in file order; data must
 * hold the tensor's nbytes bytes until the next call (so one buffer can
 * serve every tensor). An error from fill stops the write (nothing is left
 * behind) and is returned as it is. */
typedef owl_status (*owl_gguf_fill_fn)(void *ud, size_t i, const void **data);
owl_status owl_gguf_write_stream(const char *path, const owl_meta *meta, const owl_weight *tensors, size_t n_tensors,
                                 uint32_t alignment, owl_gguf_fill_fn fill, void *ud);

#endif
