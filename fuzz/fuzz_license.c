/* libFuzzer target: the model-card front matter parser and the licence text
 * classifier on arbitrary bytes. Any input must give a result or an error,
 * never a crash, a leak or an over-read. */
#include "govern/govern.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    owl_frontmatter fm;
    if (owl_frontmatter_parse("fuzz.md", (const char *)data, size, &fm) == OWL_OK) {
        volatile size_t sink = 0;
        if (fm.license) sink += strlen(fm.license);
        if (fm.license_name) sink += strlen(fm.license_name);
        if (fm.license_link) sink += strlen(fm.license_link);
        (void)sink;
        if (fm.license) (void)owl_license_from_tag(fm.license, fm.license_name);
        owl_frontmatter_free(&fm);
    }
    owl_license_match m;
    (void)owl_license_classify_text("fuzz.txt", data, size, &m);
    return 0;
}
