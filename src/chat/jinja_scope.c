/* Compile-time scoping as jinja2 does it. jinja2 decides per scope (the
 * template, a for body, a for-else body, a macro, a block set, a filter or
 * generation block) how each name it assigns starts out: a name assigned in
 * a scope that neither that scope read before nor any enclosing scope
 * mentions starts *undefined* in it, hiding a global of the same name from
 * nested scopes (a macro, a block set, an inner loop) that run before the
 * assignment. Everything else follows ordinary lookup through the enclosing
 * scopes, which the evaluator does at run time. This pass finds those
 * names; the evaluator binds them as undefined when it enters the scope. */
#include "chat/jinja.h"

#include <string.h>

enum { REF_RESOLVE, REF_ALIAS, REF_UNDEF, REF_PARAM };

typedef struct symtab symtab;
struct symtab {
    const symtab *parent;
    const char **names;
    uint8_t *kinds;
    size_t n, cap;
    const char **stores;
    size_t n_stores, cap_stores;
};

typedef struct pending { /* a scope to analyze once its parent is complete */
    const jnodes *body, *body2;
    jnode *owner;
    int which; /* 0: n->undef (body), 1: n->undef2 (for else) */
} pending;

typedef struct analyzer {
    jmem *m;
    bool oom;
} analyzer;

static long own_ref(const symtab *t, const char *name) {
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0) return (long)i;
    return -1;
}

static bool find_ref(const symtab *t, const char *name) {
    for (; t; t = t->parent)
        if (own_ref(t, name) >= 0) return true;
    return false;
}

static void define(analyzer *A, symtab *t, const char *name, int kind) {
    long i = own_ref(t, name);
    if (i >= 0) {
        t->kinds[i] = (uint8_t)kind;
        return;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        const char **nn = jmem_grow(A->m, t->names, t->n * sizeof *nn, cap * sizeof *nn);
        uint8_t *nk = jmem_grow(A->m, t->kinds, t->n, cap);
        if (!nn || !nk) {
            A->oom = true;
            return;
        }
        t->names = nn;
        t->kinds = nk;
        t->cap = cap;
    }
    t->names[t->n] = name;
    t->kinds[t->n++] = (uint8_t)kind;
}

static bool stored(const symtab *t, const char *name) {
    for (size_t i = 0; i < t->n_stores; i++)
        if (strcmp(t->stores[i], name) == 0) return true;
    return false;
}

static void add_store(analyzer *A, symtab *t, const char *name) {
    if (stored(t, name)) return;
    if (t->n_stores == t->cap_stores) {
        size_t cap = t->cap_stores ? t->cap_stores * 2 : 8;
        const char **ns = jmem_grow(A->m, t->stores, t->n_stores * sizeof *ns, cap * sizeof *ns);
        if (!ns) {
            A->oom = true;
            return;
        }
        t->stores = ns;
        t->cap_stores = cap;
    }
    t->stores[t->n_stores++] = name;
}

static void load(analyzer *A, symtab *t, const char *name) {
    if (!find_ref(t, name)) define(A, t, name, REF_RESOLVE);
}

static void store(analyzer *A, symtab *t, const char *name) {
    add_store(A, t, name);
    if (own_ref(t, name) >= 0) return;
    define(A, t, name, t->parent && find_ref(t->parent, name) ? REF_ALIAS : REF_UNDEF);
}

static symtab copy_of(analyzer *A, const symtab *t) {
    symtab c = {.parent = t->parent};
    for (size_t i = 0; i < t->n; i++) define(A, &c, t->names[i], t->kinds[i]);
    for (size_t i = 0; i < t->n_stores; i++) add_store(A, &c, t->stores[i]);
    return c;
}

/* After the branches of an if: their names join the scope; a name stored
 * in some branches only (and not before) starts as the outer value. */
static void branch_update(analyzer *A, symtab *t, symtab *br, size_t nbr) {
    const char *partial[256];
    size_t np = 0;
    for (size_t b = 0; b < nbr; b++)
        for (size_t i = 0; i < br[b].n_stores; i++) {
            const char *name = br[b].stores[i];
            if (stored(t, name)) continue;
            size_t count = 0;
            for (size_t k = 0; k < nbr; k++) count += stored(&br[k], name);
            bool seen = false;
            for (size_t k = 0; k < np; k++) seen = seen || strcmp(partial[k], name) == 0;
            if (count < nbr && !seen && np < 256) partial[np++] = name;
        }
    for (size_t b = 0; b < nbr; b++) {
        for (size_t i = 0; i < br[b].n; i++) define(A, t, br[b].names[i], br[b].kinds[i]);
        for (size_t i = 0; i < br[b].n_stores; i++) add_store(A, t, br[b].stores[i]);
    }
    for (size_t k = 0; k < np; k++)
        define(A, t, partial[k], t->parent && find_ref(t->parent, partial[k]) ? REF_ALIAS : REF_RESOLVE);
}

static void visit_expr(analyzer *A, symtab *t, const jnode *e) {
    if (!e) return;
    if (e->kind == N_NAME) {
        load(A, t, e->name);
        return;
    }
    visit_expr(A, t, e->a);
    visit_expr(A, t, e->b);
    visit_expr(A, t, e->c);
    visit_expr(A, t, e->d);
    for (size_t i = 0; i < e->list.n; i++) visit_expr(A, t, e->list.v[i]);
    for (size_t i = 0; i < e->list2.n; i++) visit_expr(A, t, e->list2.v[i]);
}

typedef struct queue {
    pending *v;
    size_t n, cap;
} queue;

static void enqueue(analyzer *A, queue *q, const jnodes *body, jnode *owner, int which) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        pending *nv = jmem_grow(A->m, q->v, q->n * sizeof *nv, cap * sizeof *nv);
        if (!nv) {
            A->oom = true;
            return;
        }
        q->v = nv;
        q->cap = cap;
    }
    q->v[q->n++] = (pending){body, NULL, owner, which};
}

static void visit_body(analyzer *A, symtab *t, const jnodes *body, queue *q);

static void visit_if(analyzer *A, symtab *t, jnode *n, queue *q) {
    visit_expr(A, t, n->a);
    symtab br[3];
    br[0] = copy_of(A, t);
    visit_body(A, &br[0], &n->list, q);
    /* jinja2 keeps the elifs as one flat list beside the else body */
    br[1] = copy_of(A, t);
    br[2] = copy_of(A, t);
    const jnode *cur = n;
    while (cur->list2.n == 1 && cur->list2.v[0]->kind == N_IF && cur->list2.v[0]->op == 1) {
        jnode *e = cur->list2.v[0];
        visit_expr(A, &br[1], e->a);
        symtab eb[3] = {copy_of(A, &br[1]), copy_of(A, &br[1]), copy_of(A, &br[1])};
        visit_body(A, &eb[0], &e->list, q);
        branch_update(A, &br[1], eb, 3);
        cur = e;
    }
    visit_body(A, &br[2], &cur->list2, q);
    branch_update(A, t, br, 3);
}

static void visit_stmt(analyzer *A, symtab *t, jnode *n, queue *q) {
    switch (n->kind) {
    case N_PRINT: visit_expr(A, t, n->a); break;
    case N_IF: visit_if(A, t, n, q); break;
    case N_FOR:
        visit_expr(A, t, n->a);
        enqueue(A, q, &n->list, n, 0);
        if (n->list2.n) enqueue(A, q, &n->list2, n, 1);
        break;
    case N_SET:
        visit_expr(A, t, n->a);
        if (n->attr) load(A, t, n->names[0]);
        else
            for (size_t i = 0; i < n->n_names; i++) store(A, t, n->names[i]);
        break;
    case N_SETBLOCK:
        if (n->attr) load(A, t, n->names[0]);
        else store(A, t, n->names[0]);
        enqueue(A, q, &n->list, n, 0);
        break;
    case N_FILTERBLOCK:
        for (const jnode *f = n->b; f; f = f->a) {
            for (size_t i = 0; i < f->list.n; i++) visit_expr(A, t, f->list.v[i]);
            for (size_t i = 0; i < f->list2.n; i++) visit_expr(A, t, f->list2.v[i]);
        }
        enqueue(A, q, &n->list, n, 0);
        break;
    case N_MACRO:
        store(A, t, n->name);
        enqueue(A, q, &n->list, n, 0);
        break;
    case N_WITH:
        for (size_t i = 0; i < n->list2.n; i++) visit_expr(A, t, n->list2.v[i]);
        enqueue(A, q, &n->list, n, 0);
        break;
    default: break;
    }
}

static void visit_body(analyzer *A, symtab *t, const jnodes *body, queue *q) {
    for (size_t i = 0; i < body->n && !A->oom; i++) visit_stmt(A, t, body->v[i], q);
}

static void collect_undef(analyzer *A, const symtab *t, const char ***out, size_t *n) {
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) k += t->kinds[i] == REF_UNDEF;
    *n = 0;
    if (!k) return;
    *out = jmem_alloc(A->m, k * sizeof **out);
    if (!*out) {
        A->oom = true;
        return;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->kinds[i] == REF_UNDEF) (*out)[(*n)++] = t->names[i];
}

/* Analyzes one scope, then (breadth-first) the scopes it opens. */
static void analyze(analyzer *A, const symtab *parent, const jnodes *body, jnode *owner, int which,
                    jparsed *root, int depth) {
    if (depth > 4 * OWL_TEMPLATE_MAX_NESTING || A->oom) return;
    symtab t = {.parent = parent};
    if (owner && which == 0 && owner->kind == N_FOR) {
        for (size_t i = 0; i < owner->n_names; i++) define(A, &t, owner->names[i], REF_PARAM);
        define(A, &t, "loop", REF_PARAM);
    } else if (owner && owner->kind == N_WITH) {
        for (size_t i = 0; i < owner->n_names; i++) store(A, &t, owner->names[i]);
    } else if (owner && owner->kind == N_MACRO) {
        for (size_t i = 0; i < owner->n_names; i++) define(A, &t, owner->names[i], REF_PARAM);
        for (size_t i = 0; i < owner->list2.n; i++) visit_expr(A, &t, owner->list2.v[i]);
    }
    queue q = {0};
    visit_body(A, &t, body, &q);
    if (!owner) collect_undef(A, &t, &root->undef, &root->n_undef);
    else if (which == 0) collect_undef(A, &t, &owner->undef, &owner->n_undef);
    else collect_undef(A, &t, &owner->undef2, &owner->n_undef2);
    for (size_t i = 0; i < q.n && !A->oom; i++)
        analyze(A, &t, q.v[i].body, q.v[i].owner, q.v[i].which, root, depth + 1);
}

owl_status jinja_analyze(jmem *m, jparsed *tree) {
    analyzer A = {.m = m};
    analyze(&A, NULL, &tree->body, NULL, 0, tree, 0);
    return A.oom ? OWL_ERR_NOMEM : OWL_OK;
}
