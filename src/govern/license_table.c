/* What each licence owl knows allows, read from the licence texts.
 *
 * Columns: commercial use, redistribution, derivatives (fine-tunes),
 * attribution, naming duty, use restrictions, user threshold, OSI approval,
 * and whether the licence meets the Open Weight Definition's criteria as owl
 * reads them: use for any purpose (commercial included), redistribution and
 * modification without field-of-use restrictions or user thresholds, with at
 * most attribution or ShareAlike duties.
 *
 * yes: allowed (at most notice / attribution duties); conditional: allowed
 * under a further condition (use restrictions passed on as enforceable
 * terms, non-commercial scope, a user threshold, a naming duty, ShareAlike);
 * no: not granted; n/a: a use policy that grants nothing. */
#include "govern/govern.h"

#include <string.h>
#include <strings.h>

#define Y OWL_TERM_YES
#define C OWL_TERM_CONDITIONAL
#define N OWL_TERM_NO
#define NA OWL_TERM_NA
#define U OWL_TERM_UNKNOWN

/* id, name, policy, commercial, redistribution, derivatives, attribution,
 * naming, use restrictions, user threshold, osi, open weight, text known,
 * clause */
static const owl_license_info TABLE[] = {
    {"Apache-2.0", "Apache License 2.0", false, Y, Y, Y, true, NULL, false, NULL, true, true, true,
     "2: perpetual, worldwide, royalty-free copyright licence to reproduce, prepare derivative works, distribute; "
     "3: patent licence; 4: redistribution keeps the licence, change notices and NOTICE attributions"},
    {"MIT", "MIT License", false, Y, Y, Y, true, NULL, false, NULL, true, true, true,
     "\"to deal in the Software without restriction\" provided the copyright and permission notice are included"},
    {"BSD-3-Clause", "BSD 3-Clause License", false, Y, Y, Y, true, NULL, false, NULL, true, true, true,
     "redistribution with or without modification if the notice, conditions and disclaimer are retained; "
     "no endorsement using the holders' names"},
    {"CC-BY-4.0", "Creative Commons Attribution 4.0", false, Y, Y, Y, true, NULL, false, NULL, false, true, true,
     "2(a)(1): reproduce and Share, produce and Share Adapted Material; 3(a): attribution"},
    {"CC-BY-SA-4.0", "Creative Commons Attribution-ShareAlike 4.0", false, Y, Y, C, true, NULL, false, NULL, false, true,
     true, "3(b): Adapted Material must be Shared under BY-SA or a compatible licence (ShareAlike); 3(a): attribution"},
    {"CC-BY-NC-4.0", "Creative Commons Attribution-NonCommercial 4.0", false, N, C, C, true, NULL, true, NULL, false,
     false, true, "2(a)(1): rights granted for NonCommercial purposes only; 3(a): attribution"},
    {"CC-BY-NC-SA-4.0", "Creative Commons Attribution-NonCommercial-ShareAlike 4.0", false, N, C, C, true, NULL, true,
     NULL, false, false, false, "NonCommercial purposes only; Adapted Material under BY-NC-SA (ShareAlike); attribution"},
    {"llama2-community", "Llama 2 Community License Agreement", false, C, C, C, true, NULL, true, "700M MAU", false,
     false, true,
     "2: over 700 million monthly active users needs a licence from Meta; 1.b.i/iii: give a copy of the agreement and "
     "the Notice; 1.b.iv: Acceptable Use Policy; 1.b.v: not to improve other large language models"},
    {"llama2-aup", "Llama 2 Acceptable Use Policy", true, NA, NA, NA, false, NULL, true, NULL, false, false, true,
     "prohibited uses of Llama 2, part of the licence through 1.b.iv"},
    {"llama3-community", "Meta Llama 3 Community License Agreement", false, C, C, C, true,
     "\"Built with Meta Llama 3\"; derived model names must begin with \"Llama 3\"", true, "700M MAU", false, false, true,
     "1.b.i: display \"Built with Meta Llama 3\", name derived models \"Llama 3...\"; 1.b.iv: Acceptable Use Policy; "
     "1.b.v: not to improve other large language models; 2: over 700 million monthly active users needs a licence"},
    {"llama3-aup", "Meta Llama 3 Acceptable Use Policy", true, NA, NA, NA, false, NULL, true, NULL, false, false, true,
     "prohibited uses of Meta Llama 3, part of the licence through 1.b.iv"},
    {"llama3.1-community", "Llama 3.1 Community License Agreement", false, C, C, C, true,
     "\"Built with Llama\"; derived model names must begin with \"Llama\"", true, "700M MAU", false, false, true,
     "1.b.i: display \"Built with Llama\", name derived models \"Llama...\"; 1.b.iv: Acceptable Use Policy; "
     "2: over 700 million monthly active users needs a licence"},
    {"llama3.1-aup", "Llama 3.1 Acceptable Use Policy", true, NA, NA, NA, false, NULL, true, NULL, false, false, true,
     "prohibited uses of Llama 3.1"},
    {"llama3.2-community", "Llama 3.2 Community License Agreement", false, C, C, C, true,
     "\"Built with Llama\"; derived model names must begin with \"Llama\"", true, "700M MAU", false, false, true,
     "1.b.i: display \"Built with Llama\", name derived models \"Llama...\"; 1.b.iv: Acceptable Use Policy (which "
     "withholds multimodal models' rights from EU-domiciled licensees); 2: over 700 million monthly active users"},
    {"llama3.2-aup", "Llama 3.2 Acceptable Use Policy", true, NA, NA, NA, false, NULL, true, NULL, false, false, true,
     "prohibited uses of Llama 3.2; multimodal models' rights not granted to EU-domiciled licensees"},
    {"llama3.3-community", "Llama 3.3 Community License Agreement", false, C, C, C, true,
     "\"Built with Llama\"; derived model names must begin with \"Llama\"", true, "700M MAU", false, false, true,
     "1.b.i: display \"Built with Llama\", name derived models \"Llama...\"; 1.b.iv: Acceptable Use Policy; "
     "2: over 700 million monthly active users needs a licence"},
    {"llama3.3-aup", "Llama 3.3 Acceptable Use Policy", true, NA, NA, NA, false, NULL, true, NULL, false, false, true,
     "prohibited uses of Llama 3.3"},
    {"llama4-community", "Llama 4 Community License Agreement", false, C, C, C, true,
     "\"Built with Llama\"; derived model names must begin with \"Llama\"", true, "700M MAU", false, false, true,
     "1.b.i: display \"Built with Llama\", name derived models \"Llama...\"; 1.b.iv: Acceptable Use Policy; "
     "2: over 700 million monthly active users needs a licence"},
    {"llama4-aup", "Llama 4 Acceptable Use Policy", true, NA, NA, NA, false, NULL, true, NULL, false, false, true,
     "prohibited uses of Llama 4"},
    {"gemma-terms-of-use", "Gemma Terms of Use", false, Y, C, C, true, NULL, true, NULL, false, false, true,
     "3.1: distributions must carry the 3.2 use restrictions as enforceable terms and the \"Gemma is provided under "
     "and subject to the Gemma Terms of Use\" Notice; 3.2: Prohibited Use Policy; no commercial limit"},
    {"gemma-prohibited-use-policy", "Gemma Prohibited Use Policy", true, NA, NA, NA, false, NULL, true, NULL, false,
     false, true, "\"You may not use nor allow others to use Gemma or Model Derivatives to\" ..."},
    {"tongyi-qianwen", "Tongyi Qianwen License Agreement", false, C, Y, C, true, NULL, true, "100M MAU", false, false,
     true,
     "4: commercial use with over 100 million monthly active users needs a licence; 3: redistribution with the "
     "agreement and Notice; 5: no using the materials or outputs to improve other large language models"},
    {"tongyi-qianwen-research", "Tongyi Qianwen Research License Agreement", false, N, C, C, true, NULL, true, NULL,
     false, false, true, "2: licence for non-commercial (research or evaluation) purposes only"},
    {"qwen-research", "Qwen Research License Agreement", false, N, C, C, true,
     "\"Built with Qwen\" or \"Improved using Qwen\" in product documentation of models made with it", true, NULL,
     false, false, true,
     "non-commercial (research or evaluation) use only; models made with the materials must display \"Built with "
     "Qwen\" or \"Improved using Qwen\""},
    {"qwen", "Qwen License Agreement (unverified: text not available to owl)", false, C, Y, C, true,
     "\"Built with Qwen\" or \"Improved using Qwen\"", true, "100M MAU", false, false, false,
     "unverified: owl has no copy of the text"},
    {"deepseek-model-1.0", "DeepSeek License Agreement 1.0", false, Y, C, C, true, NULL, true, NULL, false, false, true,
     "2/3: royalty-free copyright and patent licence; 4.a: the use-based restrictions of 5 (Attachment A) must be "
     "enforceable provisions downstream; 5: restricted uses"},
    {"mistral-research-license-0.1", "Mistral AI Research License 0.1", false, N, C, C, true, NULL, true, NULL, false,
     false, true, "3.2: Research Purposes only (non-commercial); distribution with the agreement and notices"},
    {"mistral-non-production-license-0.1", "Mistral AI Non-Production License 0.1", false, N, C, C, true, NULL, true,
     NULL, false, false, true,
     "3.2: testing, research, personal or evaluation purposes in non-production environments only"},
    {"falcon-2-11b-tii-1.0", "Falcon 2 11B TII License 1.0", false, Y, C, C, true,
     "public statements about a derivative: \"[name] is built using Falcon LLM technology from the Technology "
     "Innovation Institute\"",
     true, NULL, false, false, true,
     "Apache-2.0-based grant; distributions must carry the Acceptable Use Policy restrictions as enforceable "
     "provisions; use must follow the Acceptable Use Policy; attribution statement"},
    {"falcon-2-11b-tii-aup-1.0", "Falcon 2 11B TII Acceptable Use Policy 1.0", true, NA, NA, NA, false, NULL, true,
     NULL, false, false, true, "prohibited uses of Falcon 2 11B and its derivatives"},
    {"tii-falcon-license-2024-12", "TII Falcon License (December 2024)", false, Y, C, C, true,
     "public statements about a derivative: \"[name] is built using artificial intelligence technology from the "
     "Technology Innovation Institute\"",
     true, NULL, false, false, true,
     "Apache-2.0-based grant; distributions must carry Acceptable Use Policy restrictions as enforceable "
     "provisions (4.1.1); use must follow the Acceptable Use Policy (5); attribution statement (6.1)"},
    {"tii-falcon-aup-2024-12", "TII Falcon License Acceptable Use Policy (December 2024)", true, NA, NA, NA, false, NULL,
     true, NULL, false, false, true, "prohibited uses of the relevant models and their derivatives"},
    {"bigscience-bloom-rail-1.0", "BigScience RAIL License 1.0", false, Y, C, C, true, NULL, true, NULL, false, false,
     true,
     "royalty-free grant; 4.a: use-based restrictions (5, Attachment A) must be enforceable provisions downstream"},
    {"creativeml-openrail-m", "CreativeML Open RAIL-M", false, Y, C, C, true, NULL, true, NULL, false, false, true,
     "royalty-free grant; 4.a: use-based restrictions (5, Attachment A) must be enforceable provisions downstream"},
    {"creativeml-openrail++-m", "CreativeML Open RAIL++-M", false, Y, C, C, true, NULL, true, NULL, false, false, true,
     "royalty-free grant; 4.a: use-based restrictions (5, Attachment A) must be enforceable provisions downstream"},
    {"bigcode-openrail-m-v1", "BigCode Open RAIL-M v1", false, Y, C, C, true, NULL, true, NULL, false, false, true,
     "commercial versions may be shared; Attachment A restrictions are a condition of the grants and must be "
     "passed on"},
    {"openrail", "OpenRAIL (generic family tag, no specific text)", false, C, C, C, true, NULL, true, NULL, false,
     false, false,
     "every OpenRAIL licence carries use restrictions; commercial terms differ between them, so conditional"},
};
#define N_TABLE (sizeof TABLE / sizeof TABLE[0])

const owl_license_info *owl_license_at(size_t i) { return i < N_TABLE ? &TABLE[i] : NULL; }

const owl_license_info *owl_license_find(const char *id) {
    if (!id) return NULL;
    for (size_t i = 0; i < N_TABLE; i++)
        if (strcmp(TABLE[i].id, id) == 0) return &TABLE[i];
    return NULL;
}

const char *owl_term_name(owl_term t) {
    switch (t) {
    case OWL_TERM_YES: return "yes";
    case OWL_TERM_CONDITIONAL: return "conditional";
    case OWL_TERM_NO: return "no";
    case OWL_TERM_NA: return "n/a";
    default: return "unknown";
    }
}

/* Hugging Face licence tags and the names cards use with "license: other"
 * (case-insensitive) -> table id. */
static const struct {
    const char *tag, *id;
} ALIASES[] = {
    {"apache-2.0", "Apache-2.0"},
    {"mit", "MIT"},
    {"bsd-3-clause", "BSD-3-Clause"},
    {"cc-by-4.0", "CC-BY-4.0"},
    {"cc-by-sa-4.0", "CC-BY-SA-4.0"},
    {"cc-by-nc-4.0", "CC-BY-NC-4.0"},
    {"cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0"},
    {"llama2", "llama2-community"},
    {"llama3", "llama3-community"},
    {"llama3.1", "llama3.1-community"},
    {"llama3.2", "llama3.2-community"},
    {"llama3.3", "llama3.3-community"},
    {"llama4", "llama4-community"},
    {"gemma", "gemma-terms-of-use"},
    {"gemma-terms-of-use", "gemma-terms-of-use"},
    {"tongyi-qianwen-license-agreement", "tongyi-qianwen"},
    {"tongyi-qianwen", "tongyi-qianwen"},
    {"tongyi-qianwen-research-license-agreement", "tongyi-qianwen-research"},
    {"tongyi-qianwen-research", "tongyi-qianwen-research"},
    {"qwen-research", "qwen-research"},
    {"qwen", "qwen"},
    {"deepseek", "deepseek-model-1.0"},
    {"deepseek-license", "deepseek-model-1.0"},
    {"mrl", "mistral-research-license-0.1"},
    {"mnpl", "mistral-non-production-license-0.1"},
    {"bigscience-bloom-rail-1.0", "bigscience-bloom-rail-1.0"},
    {"creativeml-openrail-m", "creativeml-openrail-m"},
    {"openrail++", "creativeml-openrail++-m"},
    {"bigcode-openrail-m", "bigcode-openrail-m-v1"},
    {"openrail", "openrail"},
};

static const owl_license_info *lookup_tag(const char *tag) {
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++)
        if (strcasecmp(ALIASES[i].tag, tag) == 0) return owl_license_find(ALIASES[i].id);
    for (size_t i = 0; i < N_TABLE; i++) /* a table id written as such */
        if (strcasecmp(TABLE[i].id, tag) == 0) return &TABLE[i];
    return NULL;
}

const owl_license_info *owl_license_from_tag(const char *tag, const char *name) {
    if (!tag || !*tag) return NULL;
    /* license_name only means something with license: other (the Hub's rule) */
    if (strcasecmp(tag, "other") == 0) return (name && *name) ? lookup_tag(name) : NULL;
    return lookup_tag(tag);
}
