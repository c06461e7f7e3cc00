"""The two data sets of the book: real digits and a synthetic memory task.

Nothing is downloaded: the digits ship inside scikit-learn.
"""

from __future__ import annotations

import torch

from ._validate import check_positive_int

__all__ = ["digits", "adding_problem"]


def digits(*, seed: int = 0, test_fraction: float = 0.25):
    """Return scikit-learn's 8x8 handwritten digits, split and standardized.

    1,797 greyscale images of the digits 0-9 (UCI ML hand-written digits),
    flattened to 64 features. Features are standardized with the *training*
    split's mean and standard deviation, so no test statistic leaks into
    training; pixels that are constant in the training split (the corners)
    keep a standard deviation of 1 instead of dividing by zero.

    Args:
        seed: seed of the stratified train/test split.
        test_fraction: share of images held out, in (0, 1).

    Returns:
        ``(X_train, y_train, X_test, y_test)``: float32 ``[n, 64]`` inputs and
        int64 ``[n]`` class labels, on the CPU.

    Raises:
        ValueError: ``test_fraction`` is not in (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got "
                         f"{test_fraction!r}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y)
    X_tr = torch.as_tensor(X_tr, dtype=torch.float32)
    X_te = torch.as_tensor(X_te, dtype=torch.float32)
    mean = X_tr.mean(dim=0)
    std = X_tr.std(dim=0)
    std[std == 0] = 1.0  # constant pixels: leave them at zero after centring
    return ((X_tr - mean) / std, torch.as_tensor(y_tr, dtype=torch.int64),
            (X_te - mean) / std, torch.as_tensor(y_te, dtype=torch.int64))


def adding_problem(n: int, seq_len: int, *, generator: torch.Generator):
    """Generate the adding problem of Hochreiter & Schmidhuber (1997).

    Each sequence has two channels: random values ``u_t ~ U(0, 1)`` and a
    marker ``m_t`` that is 1 at exactly two time steps and 0 elsewhere. The
    target is the sum of the two marked values,

    .. math:: y = \\sum_t m_t u_t .

    One marker falls in the first half of the sequence and one in the second,
    so a model must carry information across at least ``seq_len / 2`` steps:
    a test of long-range gradient flow. Predicting the mean (1.0) gives a mean
    squared error of about 1/6.

    Args:
        n: number of sequences.
        seq_len: time steps ``T``, at least 2.
        generator: source of randomness.

    Returns:
        ``(x, y)`` with ``x`` of shape ``[n, T, 2]`` and ``y`` of shape
        ``[n, 1]``, float32 on the CPU.

    Raises:
        ValueError: ``n < 1`` or ``seq_len < 2``.
    """
    check_positive_int("n", n)
    check_positive_int("seq_len", seq_len, minimum=2)
    values = torch.rand(n, seq_len, generator=generator)           # [n, T]
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=generator)       # [n]
    second = torch.randint(half, seq_len, (n,), generator=generator)
    markers = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)                       # [n, T, 2]
    y = (values * markers).sum(dim=1, keepdim=True)                  # [n, 1]
    return x, y
