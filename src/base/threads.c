/* The number of threads matrix products use. */
#include "base/base.h"

#include <omp.h>

static int n_threads;

void owl_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    n_threads = n;
    omp_set_num_threads(n);
}

int owl_get_threads(void) { return owl_threads(); }

int owl_threads(void) {
    if (n_threads <= 0) owl_set_threads(0);
    return n_threads;
}
