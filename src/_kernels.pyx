# cython: language_level=3
"""Native kernels of mnist_native: the network's forward pass, backprop and weight update.

Design
------
* One affine layer kernel serves both layers: ``u = a @ w`` where ``a`` already carries the
  bias input as its last column of ones and ``w`` the bias weights as its last row (the lab's
  layout), fused with the transfer function so ``u`` is read once while hot.
* Entries of ``a`` that are exactly zero are skipped (MNIST pixels are ~81% zero); the sums
  are the same, minus exact-zero terms.
* Every thread owns what it writes: the forward pass and the deltas are split over samples, the
  weight update over weight rows, each row summing the batch in a fixed order.  No atomics, no
  shared accumulators: results are bit-identical for any thread count.
* Sums are kept in double, for float32 too.
* Shapes, dtypes, contiguity and finiteness are checked (``mnist_native._validation``, with
  ``all_finite`` below) before any other ``nogil`` code runs; per-thread scratch is
  allocated there too and passed in.

Argument order: outputs first, then inputs, then scalars, ``n_threads`` last.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log, tanh as c_tanh

cdef extern from "platform.h" nogil:
    int MN_OPENMP
    const char* MN_COMPILER
    int mn_max_threads()
    int mn_thread_num()

# Activation codes (fused.h uses the same numbers: MN_ACT_SIGMOID, MN_ACT_TANH).
ACT_IDENTITY = 0
ACT_SIGMOID = 1
ACT_TANH = 2
ACT_SOFTMAX = 3
# Loss codes.
LOSS_MSE = 0
LOSS_XE = 1

OPENMP = bool(MN_OPENMP)
COMPILER = MN_COMPILER.decode("ascii", "replace")


def max_threads():
    """The OpenMP runtime's default thread count (1 without OpenMP)."""
    return mn_max_threads()


cdef inline double sigmoid(double x) noexcept nogil:
    # Two branches so exp never overflows: exp(-|x|) <= 1.
    cdef double e
    if x >= 0:
        return 1.0 / (1.0 + exp(-x))
    e = exp(x)
    return e / (1.0 + e)


cdef inline double activate(double u, int act) noexcept nogil:
    if act == 1:
        return sigmoid(u)
    if act == 2:
        return c_tanh(u)
    return u


cdef inline double derivative_from_output(double o, int act) noexcept nogil:
    # f'(u) written through f(u): sigmoid' = s (1 - s), tanh' = 1 - t^2, identity' = 1.
    if act == 1:
        return o * (1.0 - o)
    if act == 2:
        return 1.0 - o * o
    return 1.0


cdef check_scratch(double[:, ::1] scratch, int n_threads, Py_ssize_t width):
    """Each of ``n_threads`` threads sums in its own row of ``scratch``, ``width`` values:
    refuse a scratch that has fewer (the rows are indexed by thread, unchecked)."""
    if n_threads < 1 or scratch.shape[0] < n_threads or scratch.shape[1] < width:
        raise ValueError(f"scratch of shape ({scratch.shape[0]}, {scratch.shape[1]}) is too "
                         f"small for {n_threads} threads of {width} values")


@cython.boundscheck(False)
@cython.wraparound(False)
def affine_forward(floating[:, ::1] u, floating[:, ::1] o, const floating[:, ::1] a,
                   const floating[:, ::1] w, double[:, ::1] scratch, int act, int n_threads):
    """``u = a @ w``, ``o[:, :m] = act(u)``, and ``o[:, m] = 1`` when ``o`` has ``m + 1`` columns.

    Shapes: a (batch, n + 1) with the bias input in its last column; w (n + 1, m) with the bias
    weights in its last row; u (batch, m); o (batch, m) or (batch, m + 1); scratch
    (n_threads, m) doubles.  ``act`` is one of the ACT_* codes; ACT_SOFTMAX normalises each
    row with its maximum subtracted.
    """
    cdef Py_ssize_t batch = a.shape[0], n = a.shape[1], m = w.shape[1]
    cdef Py_ssize_t b, i, j
    cdef double x, top, total
    cdef double* acc
    cdef bint bias_column = o.shape[1] == m + 1
    check_scratch(scratch, n_threads, m)
    with nogil:
        for b in prange(batch, schedule="static", num_threads=n_threads):
            acc = &scratch[mn_thread_num(), 0]
            for j in range(m):
                acc[j] = 0.0
            for i in range(n):
                x = a[b, i]
                if x != 0.0:
                    for j in range(m):
                        acc[j] += x * w[i, j]
            for j in range(m):
                u[b, j] = <floating>acc[j]
            if act == 3:
                top = acc[0]
                for j in range(1, m):
                    if acc[j] > top:
                        top = acc[j]
                total = 0.0
                for j in range(m):
                    acc[j] = exp(acc[j] - top)
                    total = total + acc[j]
                for j in range(m):
                    o[b, j] = <floating>(acc[j] / total)
            else:
                for j in range(m):
                    o[b, j] = <floating>activate(acc[j], act)
            if bias_column:
                o[b, m] = 1


@cython.boundscheck(False)
@cython.wraparound(False)
def output_delta(floating[:, ::1] delta, const floating[:, ::1] o, const floating[:, ::1] y,
                 int loss, int act, int n_threads):
    """dL/du at the output, for one sample's loss (the batch mean is taken in the update).

    Shapes: delta, o, y (batch, k).  MSE, L = ||o - y||^2: delta = 2 (o - y) f'(u), with f'
    written through o.  Cross-entropy on a softmax, L = -sum y log o: delta = o - y.
    """
    cdef Py_ssize_t batch = o.shape[0], k = o.shape[1], b, j
    with nogil:
        for b in prange(batch, schedule="static", num_threads=n_threads):
            for j in range(k):
                if loss == 1:
                    delta[b, j] = o[b, j] - y[b, j]
                else:
                    delta[b, j] = <floating>(2.0 * (o[b, j] - y[b, j])
                                             * derivative_from_output(o[b, j], act))


@cython.boundscheck(False)
@cython.wraparound(False)
def hidden_delta(floating[:, ::1] delta_h, const floating[:, ::1] delta_o,
                 const floating[:, ::1] w2, const floating[:, ::1] o_hidden, int act,
                 int n_threads):
    """dL/du at the hidden layer: (delta_o . w2[:h]^T) * f'(u_hidden).

    Shapes: delta_h (batch, h); delta_o (batch, k); w2 (h + 1, k), its bias row unused;
    o_hidden (batch, h + 1), f' written through it.
    """
    cdef Py_ssize_t batch = delta_o.shape[0], k = delta_o.shape[1], h = delta_h.shape[1]
    cdef Py_ssize_t b, i, j
    cdef double s
    with nogil:
        for b in prange(batch, schedule="static", num_threads=n_threads):
            for i in range(h):
                s = 0.0
                for j in range(k):
                    s = s + delta_o[b, j] * w2[i, j]
                delta_h[b, i] = <floating>(s * derivative_from_output(o_hidden[b, i], act))


# Rows of the weight matrix one task updates: the matching columns of `a` share cache lines.
cdef enum:
    ROWS = 4


@cython.boundscheck(False)
@cython.wraparound(False)
def weight_update(floating[:, ::1] w, const floating[:, ::1] a, const floating[:, ::1] delta,
                  double step, double[:, ::1] scratch, int n_threads):
    """Gradient step ``w -= step * (a^T @ delta)``, with ``step = learning_rate / batch``.

    Shapes: w (n, m); a (batch, n); delta (batch, m); scratch (n_threads, ROWS * m) doubles.
    Each task owns ROWS rows of ``w`` and sums the batch in order: deterministic.
    """
    cdef Py_ssize_t batch = a.shape[0], n = a.shape[1], m = w.shape[1]
    cdef Py_ssize_t blocks = (n + ROWS - 1) // ROWS
    cdef Py_ssize_t blk, b, r, i, i0, rows, j
    cdef double x
    cdef double* acc
    check_scratch(scratch, n_threads, (n if n < ROWS else ROWS) * m)
    with nogil:
        for blk in prange(blocks, schedule="static", num_threads=n_threads):
            acc = &scratch[mn_thread_num(), 0]
            i0 = blk * ROWS
            rows = n - i0 if n - i0 < ROWS else ROWS
            for j in range(rows * m):
                acc[j] = 0.0
            for b in range(batch):
                for r in range(rows):
                    x = a[b, i0 + r]
                    if x != 0.0:
                        for j in range(m):
                            acc[r * m + j] += x * delta[b, j]
            for r in range(rows):
                for j in range(m):
                    w[i0 + r, j] = <floating>(w[i0 + r, j] - step * acc[r * m + j])


def update_scratch_width(Py_ssize_t m):
    """Columns of scratch that weight_update needs for a weight matrix of m columns."""
    return ROWS * m


# Values below which a finiteness check runs on one thread (waking a second costs microseconds).
cdef enum:
    PARALLEL_VALUES = 1 << 18
    # Independent sums in row_finite: enough vectors to hide the additions' latency.
    SUMS = 16


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline bint row_finite(const floating *v, Py_ssize_t d) noexcept nogil:
    """Whether v[0..d) are all finite: v - v is 0 for a finite v, NaN for NaN and the
    infinities, so their sum is 0 or NaN (the values' own sum could overflow).  SUMS sums,
    which the compiler keeps in vectors (comparisons, with SSE2's doubles, it does not)."""
    cdef floating s[SUMS]
    cdef floating total = 0
    cdef Py_ssize_t whole = d - d % SUMS, j, k
    for k in range(SUMS):
        s[k] = 0
    for j in range(0, whole // SUMS):
        for k in range(SUMS):
            s[k] += v[j * SUMS + k] - v[j * SUMS + k]
    for j in range(whole, d):
        total += v[j] - v[j]
    for k in range(SUMS):
        total += s[k]
    return total == 0


@cython.boundscheck(False)
@cython.wraparound(False)
def all_finite(const floating[:, ::1] x, int n_threads=1):
    """Whether every value of x is finite; rows split between n_threads when x is large."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i
    cdef Py_ssize_t bad = 0
    if n_threads < 1:
        raise ValueError("n_threads must be >= 1")
    if n == 0 or d == 0:
        return True
    if n * d < PARALLEL_VALUES:
        n_threads = 1
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            bad += not row_finite(&x[i, 0], d)
    return bad == 0
