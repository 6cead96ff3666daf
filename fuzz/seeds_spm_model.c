/* Writes a seed corpus for fuzz_spm_model into the directory argv[1]: small
 * hand-made tokenizer.model and tokenizer.bin files (first byte 0: model,
 * 1: tokenizer.bin), plus the real stories260K tok512.bin from
 * $OWL_TESTDATA when it is there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int put(const char *dir, const char *name, const void *data, size_t len, int kind) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    fputc(kind, f);
    fwrite(data, 1, len, f);
    return fclose(f) != 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_spm_model DIR\n");
        return 2;
    }
    /* a tiny BPE model: control, unknown, byte, user-defined and normal pieces */
    static const struct {
        const char *piece;
        float score;
        int type;
    } pieces[] = {{"<unk>", 0, 2}, {"<s>", 0, 3},  {"</s>", 0, 3},   {"<0x41>", 0, 6}, {"\xe2\x96\x81", -1, 1},
                  {"a", -2, 1},    {"b", -3, 1},   {"\xe2\x96\x81" "a", 1, 1}, {"ab", 0.5f, 1}, {"<u>", 0, 4},
                  {"ba", 0, 5}};
    unsigned char model[512];
    size_t n = 0;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        size_t pl = strlen(pieces[i].piece);
        model[n++] = 0x0a; /* ModelProto.pieces */
        model[n++] = (unsigned char)(2 + pl + 5 + 2);
        model[n++] = 0x0a; /* piece */
        model[n++] = (unsigned char)pl;
        memcpy(model + n, pieces[i].piece, pl);
        n += pl;
        model[n++] = 0x15; /* score, fixed32 */
        memcpy(model + n, &pieces[i].score, 4);
        n += 4;
        model[n++] = 0x18; /* type */
        model[n++] = (unsigned char)pieces[i].type;
    }
    static const unsigned char specs[] = {
        0x12, 0x05, 0x18, 0x02, 0x98, 0x02, 0x01, /* trainer_spec: model_type BPE, byte_fallback */
        0x1a, 0x04, 0x18, 0x01, 0x20, 0x00,       /* normalizer_spec: add_dummy_prefix, keep whitespace */
    };
    memcpy(model + n, specs, sizeof specs);
    n += sizeof specs;
    int bad = put(argv[1], "tiny.model", model, n, 0);
    static const unsigned char tokbin[] = {
        4, 0, 0, 0,                                       /* max_token_length */
        0, 0, 0, 0, 5, 0, 0, 0, '<', 'u', 'n', 'k', '>', /* oops: longer than max: a bad seed too */
    };
    bad |= put(argv[1], "bad.bin", tokbin, sizeof tokbin, 1);
    static const unsigned char tokbin2[] = {
        5, 0, 0, 0,
        0, 0, 0, 0, 5, 0, 0, 0, '<', 'u', 'n', 'k', '>',
        0, 0, 0, 0, 5, 0, 0, 0, '\n', '<', 's', '>', '\n',
        0, 0, 0, 0, 3, 0, 0, 0, ' ', 'a', 'b',
        0, 0, 0x80, 0xbf, 1, 0, 0, 0, 'a',
        0, 0, 0x80, 0xbf, 1, 0, 0, 0, ' ',
    };
    bad |= put(argv[1], "tiny.bin", tokbin2, sizeof tokbin2, 1);
    const char *td = getenv("OWL_TESTDATA");
    if (td) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizers/tinystories512/tok512.bin", td);
        FILE *f = fopen(path, "rb");
        if (f) {
            static unsigned char buf[1 << 16];
            size_t n = fread(buf, 1, sizeof buf, f);
            fclose(f);
            bad |= put(argv[1], "tok512.bin", buf, n, 1);
        }
    }
    return bad;
}
