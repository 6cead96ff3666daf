/* UTF-8 helpers. */
#include "base/base.h"

int owl_utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0; /* continuation byte or overlong lead */
    if (c < 0xe0) return 2;
    if (c < 0xf0) return 3;
    if (c < 0xf5) return 4;
    return 0;
}
