"""Training inputs that arrive as CSR, checked and put in the form the fused kernels read.

The kernels of ``_train`` take every data set as CSR rows (int64 row pointers, uint16 column
indices, values of the model's dtype) plus a dense block of the busy columns
(``_fused.Batches``).  From a dense array ``_fused`` builds both itself; ``SparseRows`` lets
inputs that already are CSR (a SciPy sparse matrix) skip that densify-and-compress round
trip: its ``column_counts`` and ``split`` give ``_fused`` what its dense path computes, equal
bit for bit, so training on CSR gives exactly the weights of training on the dense array.

No SciPy here: ``SparseRows`` takes the three CSR arrays and the shape.
"""
import numpy as np

from . import _validation as v

# Column indices are uint16 in the kernels; one more slot is the bias input.
MAX_FEATURES = int(np.iinfo(np.uint16).max) - 1


class SparseRows:
    """``n`` rows of ``n_features`` columns as CSR, checked, in the model's dtype.

    Parameters
    ----------
    indptr, indices, data : array-like
        The CSR arrays (SciPy's ``X.indptr``, ``X.indices``, ``X.data``).  Column indices
        must increase strictly within each row (SciPy's canonical form); explicit zeros are
        dropped, as the dense path never stores a zero.
    n_features : int
        Columns (at most ``MAX_FEATURES``: the kernels' indices are uint16).
    dtype : float32 or float64
        The model's dtype; values are converted to it.

    The checks run before anything reaches the kernels, which trust their indices:
    ``ValueError`` names what is wrong.
    """

    def __init__(self, indptr, indices, data, n_features, dtype):
        n_features = v.check_positive_int(n_features, "n_features")
        if n_features > MAX_FEATURES:
            raise ValueError(f"sparse input with {n_features} features: the native kernels "
                             f"take at most {MAX_FEATURES} (uint16 column indices); pass a "
                             "dense array instead")
        self.dtype = v.check_dtype(dtype)
        indptr = np.asarray(indptr)
        indices = np.asarray(indices)
        values = np.asarray(data)
        _check_structure(indptr, indices, values, n_features)
        values = values.astype(self.dtype, copy=False)
        if not np.isfinite(values).all():
            raise ValueError("sparse input contains NaN or infinite values")
        zero = values == 0
        if zero.any():  # drop explicit zeros: the dense path stores none
            zeros_before = np.concatenate(([0], np.cumsum(zero)))
            indptr = indptr - zeros_before[indptr]
            indices, values = indices[~zero], values[~zero]
        self.indptr = indptr.astype(np.int64)
        self.indices = indices.astype(np.uint16)
        self.values = np.ascontiguousarray(values)
        self.shape = (len(indptr) - 1, n_features)

    def __len__(self):
        return self.shape[0]

    def head(self, n):
        """The first ``n`` rows (at least one), as ``SparseRows``."""
        n = max(1, min(n, len(self)))
        end = self.indptr[n]
        return SparseRows(self.indptr[:n + 1], self.indices[:end], self.values[:end],
                          self.shape[1], self.dtype)

    def column_counts(self):
        """Nonzero entries per column (int64), as ``_train.column_counts`` counts them."""
        return np.bincount(self.indices, minlength=self.shape[1]).astype(np.int64)

    def split(self, dense_columns):
        """(indptr int64, indices uint16, values, dense block) for the kernels: the entries
        of the columns ``dense_columns`` (int64, increasing) in an (n, m) C-contiguous block,
        every other entry as CSR, rows in order and columns increasing within a row."""
        n, d = self.shape
        dense_columns = np.asarray(dense_columns, dtype=np.int64)
        if len(dense_columns) == 0:
            return self.indptr, self.indices, self.values, np.zeros((n, 0), self.dtype)
        slot = np.full(d, -1, dtype=np.int64)
        slot[dense_columns] = np.arange(len(dense_columns))
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr))
        in_dense = slot[self.indices] >= 0
        dense = np.zeros((n, len(dense_columns)), dtype=self.dtype)
        dense[rows[in_dense], slot[self.indices[in_dense]]] = self.values[in_dense]
        sparse = ~in_dense
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[sparse], minlength=n), out=indptr[1:])
        return indptr, self.indices[sparse], np.ascontiguousarray(self.values[sparse]), dense


def _check_structure(indptr, indices, values, n_features):
    """CSR arrays that describe rows of ``n_features`` columns, indices increasing."""
    if indptr.ndim != 1 or indices.ndim != 1 or values.ndim != 1:
        raise ValueError("sparse input: indptr, indices and data must be 1-D")
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise ValueError("sparse input: indptr and indices must be integers")
    if len(indptr) < 2:
        raise ValueError("sparse input is empty: it needs at least one sample")
    nnz = len(indices)
    if len(values) != nnz or indptr[0] != 0 or indptr[-1] != nnz:
        raise ValueError(f"sparse input: indptr runs from {indptr[0]} to {indptr[-1]} but "
                         f"there are {nnz} indices and {len(values)} values")
    if (np.diff(indptr.astype(np.int64, copy=False)) < 0).any():  # unsigned diffs wrap
        raise ValueError("sparse input: indptr must not decrease")
    if nnz == 0:
        return
    if indices.min() < 0 or indices.max() >= n_features:
        raise ValueError(f"sparse input: column indices must lie in [0, {n_features})")
    # Within a row, each index must exceed the one before it; across a row boundary anything
    # goes.  Positions where a row starts are the nonzero, in-range entries of indptr.
    step_up = np.diff(indices.astype(np.int64)) > 0
    starts = indptr[1:-1]
    starts = starts[(starts > 0) & (starts < nnz)]
    step_up[starts - 1] = True
    if not step_up.all():
        raise ValueError("sparse input: column indices must increase within each row "
                         "(sort them and sum duplicates first, e.g. X.sum_duplicates())")
