"""SpMV, CSR: y = A @ x for a square fp32 sparse matrix of 2^21 rows with irregular row lengths (empty rows, rows of thousands), given as int32 crow/col + values."""
import torch
import torch.nn as nn

# ~33M nonzeros: values 134 MB + col 134 MB + crow/x/y 25 MB = ~290 MB moved, ~75 us at
# ~4 TB/s on an H200 (x, 8 MB, mostly hits the 50 MB L2). Row lengths are uniform in
# [0, 2*AVG_NNZ] with ~6% forced empty (including the first and last row and a run of them)
# and ~1e-4 of rows long (up to LONG_NNZ), so one-thread-per-row kernels are unbalanced and
# kernels that skip empty rows (leaving y unwritten) or mis-read row bounds fail.
# Values and x are drawn from [0.5, 1.5): with signed (randn) data, rows of thousands of
# terms cancel to sums near 0, where fp32 summation order alone (the reference's own
# index_add_ is atomic on the GPU) moved a correct kernel 7x past the 1e-4 tolerance on an
# H200; positive terms keep every row sum far from 0, so order differences stay far below it
# and a dropped or misplaced term (~1 against row sums of ~16) still fails by ~10^3x.
ROWS = 2**21
AVG_NNZ = 16
EMPTY_FRACTION = 0.06
LONG_FRACTION = 1e-4
LONG_NNZ = 8192


class Model(nn.Module):
    """y[i] = sum over k in [crow[i], crow[i+1]) of values[k] * x[col[k]]; 0 for an empty row.
    Column indices are sorted within each row (duplicates, which add up, may occur)."""

    def __init__(self):
        super().__init__()

    def forward(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n = crow.numel() - 1
        counts = (crow[1:] - crow[:-1]).long()
        rows = torch.repeat_interleave(torch.arange(n, device=x.device), counts, output_size=values.numel())
        return torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(0, rows, values * x[col.long()])


def get_inputs():
    n = ROWS
    lengths = torch.randint(0, 2 * AVG_NNZ + 1, (n,))
    lengths[torch.rand(n) < EMPTY_FRACTION] = 0
    long_len = min(LONG_NNZ, n)
    lengths = torch.where(torch.rand(n) < LONG_FRACTION, torch.randint(long_len // 8, long_len + 1, (n,)), lengths)
    lengths[n // 2] = long_len  # at least one long row at any size
    lengths[0] = lengths[-1] = 0  # empty first and last rows
    lengths[n // 3:n // 3 + 5] = 0  # a run of empty rows
    crow = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=crow[1:])
    nnz = int(crow[-1])
    rows = torch.repeat_interleave(torch.arange(n), lengths, output_size=nnz)
    keys = torch.sort(rows * n + torch.randint(0, n, (nnz,))).values  # sorted columns within each row
    col = (keys % n).to(torch.int32)
    return [crow.to(torch.int32), col, torch.rand(nnz).add_(0.5), torch.rand(n).add_(0.5)]


def get_init_inputs():
    return []
