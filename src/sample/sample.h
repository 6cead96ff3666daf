/* sample/: turning logits into the next token.
 *
 * The public API (owl_sampler_* in owl.h) runs this chain on a copy of the
 * logits:
 *
 *   1. repetition penalty over the last repeat_last_n accepted tokens, each
 *      distinct token once: a positive logit is divided by the penalty, a
 *      negative one multiplied (llama.cpp's semantics);
 *   2. temperature <= 0: greedy, the largest logit, the lowest id on ties;
 *   3. top-k: the k largest logits (ties: lower id first);
 *   4. softmax of logit / temperature over what is left;
 *   5. top-p: the smallest prefix (by probability, descending) whose
 *      cumulative probability reaches top_p, at least one token;
 *   6. min-p: drop tokens with p < min_p * p_max;
 *   7. a draw from what is left, renormalised, with xoshiro256** seeded by
 *      splitmix64(seed): the same seed gives the same sequence.
 *
 * NaN and -inf logits are never chosen; +inf counts as the largest finite
 * value. Top-p and min-p both keep a prefix of the same sorted order, so
 * min-p is applied first (it needs no sort) and top-p then sorts only what
 * survived; the result is the same set as applying them in the order above.
 */
#ifndef OWL_SAMPLE_H
#define OWL_SAMPLE_H

#include "base/base.h"

/* The distribution the next draw would use: the candidate ids after every
 * filter, in descending probability (ties: lower id first), and their
 * renormalised probabilities (summing to 1). ids and probs must hold
 * n_vocab entries. Returns the number of candidates (1 for greedy, 0 if no
 * logit is a number). Does not advance the random state. */
int owl_sampler_distribution(owl_sampler *s, const float *logits, int32_t *ids, float *probs);

/* The generator itself, exposed for tests. */
typedef struct owl_rng {
    uint64_t s[4];
} owl_rng;
void owl_rng_seed(owl_rng *r, uint64_t seed);
uint64_t owl_rng_next(owl_rng *r);
double owl_rng_uniform(owl_rng *r); /* [0, 1), 53 random bits */

#endif
