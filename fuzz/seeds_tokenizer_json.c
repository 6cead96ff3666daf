/* Writes a small seed corpus for fuzz_tokenizer_json into the directory
 * argv[1]: hand-written tokenizer.json files covering byte-level and
 * SentencePiece-style models, every pre-tokenizer, normalizer, decoder and
 * post-processor the loader knows. */
#include <stdio.h>
#include <string.h>

static const char *vocab_bl =
    "\"vocab\":{\"H\":0,\"e\":1,\"l\":2,\"o\":3,\"\\u0120\":4,\"w\":5,\"r\":6,\"d\":7,\"He\":8,\"ll\":9,\"Hell\":10,"
    "\"Hello\":11,\"\\u0120w\":12,\"1\":13,\"2\":14,\"3\":15}";

static const char *seeds[][2] = {
    {"bytelevel.json",
     "{\"model\":{\"type\":\"BPE\",%s,\"merges\":[\"H e\",\"l l\",\"He ll\",\"Hell o\",\"\\u0120 w\"],\"ignore_merges\":true},"
     "\"added_tokens\":[{\"id\":16,\"content\":\"<s>\",\"special\":true,\"lstrip\":true,\"rstrip\":true},"
     "{\"id\":17,\"content\":\"tok\",\"special\":false,\"single_word\":true}],"
     "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
     "\"\\\\p{N}{1,3}| ?\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"Digits\",\"individual_digits\":true},"
     "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":false}]},"
     "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"},{\"type\":\"Strip\"}]},"
     "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
     "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[16],\"tokens\":[\"<s>\"]}}},"
     "\"decoder\":{\"type\":\"ByteLevel\"}}"},
    {"spm.json",
     "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"<s>\":1,\"<0x41>\":2,\"\\u2581\":3,\"a\":4,\"b\":5,\"\\u2581a\":6,\"ab\":7},"
     "\"merges\":[[\"\\u2581\",\"a\"],[\"a\",\"b\"]],\"byte_fallback\":true,\"fuse_unk\":true,\"unk_token\":\"<unk>\"},"
     "\"added_tokens\":[{\"id\":1,\"content\":\"<s>\",\"special\":true}],"
     "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
     "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
     "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"
     "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}}"},
    {"metaspace.json",
     "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"\\u2581\":1,\"a\":2,\"\\u2581a\":3},\"merges\":[\"\\u2581 a\"],"
     "\"unk_token\":\"<unk>\"},\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\","
     "\"split\":true},\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"},"
     "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\"},"
     "\"post_processor\":{\"type\":\"RobertaProcessing\",\"cls\":[\"a\",2],\"sep\":[\"\\u2581a\",3]}}"},
    {"split.json",
     "{\"model\":{\"type\":\"BPE\",%s,\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
     "{\"type\":\"Split\",\"pattern\":{\"String\":\"l\"},\"behavior\":\"MergedWithNext\",\"invert\":true},"
     "{\"type\":\"Split\",\"pattern\":{\"String\":\"e\"},\"behavior\":\"MergedWithPrevious\",\"invert\":false},"
     "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"o\"},\"behavior\":\"Contiguous\",\"invert\":false},"
     "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x*\"},\"behavior\":\"Removed\",\"invert\":false},"
     "{\"type\":\"Whitespace\"},{\"type\":\"Punctuation\"},{\"type\":\"WhitespaceSplit\"},{\"type\":\"ByteLevel\"}]}}"},
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_tokenizer_json DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], seeds[i][0]);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        fprintf(f, seeds[i][1], vocab_bl);
        fclose(f);
    }
    return 0;
}
