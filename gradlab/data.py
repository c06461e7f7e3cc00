"""The data sets of the book: real digits, a synthetic memory task, and a
synthetic language whose best possible loss is known.

Nothing is downloaded: the digits ship inside scikit-learn.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ._validate import check_positive_int

__all__ = ["digits", "adding_problem", "markov_chain", "markov_entropy_rate"]


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
    X, y = _digits_arrays()
    train, test = _split_indices(y, seed, test_fraction)
    X_tr = torch.as_tensor(X[train], dtype=torch.float32)
    X_te = torch.as_tensor(X[test], dtype=torch.float32)
    mean = X_tr.mean(dim=0)
    std = X_tr.std(dim=0)
    std[std == 0] = 1.0  # constant pixels: leave them at zero after centring
    return ((X_tr - mean) / std, torch.as_tensor(y[train], dtype=torch.int64),
            (X_te - mean) / std, torch.as_tensor(y[test], dtype=torch.int64))


# The split every notebook uses (seed 0, a quarter held out), as drawn by
# scikit-learn's stratified train_test_split, stored so that a notebook
# need not import scikit-learn (about 1 s) to get it. The tests check it
# against scikit-learn (tests/test_models_data.py).
_STORED_SPLIT = Path(__file__).with_name("digits_split_seed0.npz")


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The images ``[1797, 64]`` (float64, values 0-16) and labels, read
    from the file scikit-learn ships, as ``load_digits`` reads it; through
    ``load_digits`` itself if that file is not where it used to be."""
    spec = importlib.util.find_spec("sklearn")  # finds, does not import
    path = (Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
            if spec is not None and spec.origin else None)
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits
        return load_digits(return_X_y=True)
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int)


def _split_indices(y: np.ndarray, seed: int, test_fraction: float):
    """Positions of the training and test images, in the order scikit-
    learn's ``train_test_split(..., stratify=y)`` returns them."""
    if seed == 0 and test_fraction == 0.25 and _STORED_SPLIT.is_file():
        stored = np.load(_STORED_SPLIT)
        return stored["train"].astype(np.int64), stored["test"].astype(np.int64)
    from sklearn.model_selection import train_test_split
    return train_test_split(np.arange(len(y)), test_size=test_fraction,
                            random_state=seed, stratify=y)


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


def markov_chain(n: int, seq_len: int, *, vocab_size: int,
                 generator: torch.Generator, sharpness: float = 2.0):
    """Sample token sequences from a random first-order Markov chain.

    A small synthetic language for causal language models whose optimal
    loss is known in closed form. The transition matrix has rows

    .. math:: P_{i\\cdot} = \\mathrm{softmax}(s\\, z_{i\\cdot}),
        \\qquad z_{ij} \\sim \\mathcal N(0, 1),

    with ``s = sharpness`` (0 gives i.i.d. uniform tokens, larger values
    more predictable ones). The first token of every sequence is drawn from
    the chain's stationary distribution :math:`\\pi`, so every position has
    marginal :math:`\\pi`, and the best expected cross-entropy of a model
    that predicts token ``t + 1`` from tokens ``0..t`` is the entropy rate
    :func:`markov_entropy_rate` (in nats).

    Args:
        n: number of sequences.
        seq_len: tokens per sequence, at least 2 (a language model reads
            ``tokens[:, :-1]`` and predicts ``tokens[:, 1:]``).
        vocab_size: number of states (token ids ``0..vocab_size - 1``), at
            least 2.
        generator: source of randomness for the matrix and the samples.
        sharpness: scale ``s >= 0`` of the logits of each row.

    Returns:
        ``(tokens, transition)``: int64 ``[n, seq_len]`` token ids and the
        float64 ``[vocab_size, vocab_size]`` row-stochastic matrix
        ``transition[i, j] = P(next = j | current = i)``, on the CPU.

    Raises:
        ValueError: ``n < 1``, ``seq_len < 2``, ``vocab_size < 2`` or
            ``sharpness < 0``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> tokens, P = markov_chain(512, 33, vocab_size=16, generator=g)
        >>> inputs, targets = tokens[:, :-1], tokens[:, 1:]   # [512, 32]
        >>> best = markov_entropy_rate(P)   # the loss to aim for, in nats
    """
    check_positive_int("n", n)
    check_positive_int("seq_len", seq_len, minimum=2)
    check_positive_int("vocab_size", vocab_size, minimum=2)
    if not sharpness >= 0:
        raise ValueError(f"sharpness must be >= 0, got {sharpness!r}")
    logits = torch.randn(vocab_size, vocab_size, generator=generator,
                         dtype=torch.float64)
    transition = torch.softmax(sharpness * logits, dim=1)    # [V, V]
    start = _stationary(transition)                           # [V]
    tokens = torch.empty(n, seq_len, dtype=torch.int64)
    tokens[:, 0] = torch.multinomial(start.expand(n, -1), 1,
                                     generator=generator)[:, 0]
    for t in range(1, seq_len):  # each row's next token given its current
        rows = transition[tokens[:, t - 1]]                   # [n, V]
        tokens[:, t] = torch.multinomial(rows, 1, generator=generator)[:, 0]
    return tokens, transition


def _stationary(transition: torch.Tensor) -> torch.Tensor:
    """The stationary distribution ``pi = pi P`` of a row-stochastic
    matrix with positive entries (unique by Perron-Frobenius)."""
    values, vectors = torch.linalg.eig(transition.T.to(torch.float64))
    pi = vectors[:, values.real.argmax()].real                # [V]
    return (pi / pi.sum()).clamp_min(0)


def markov_entropy_rate(transition: torch.Tensor) -> float:
    """Return the entropy rate of a Markov chain, in nats.

    .. math:: H = -\\sum_i \\pi_i \\sum_j P_{ij} \\log P_{ij},

    where :math:`\\pi` is the stationary distribution (``pi = pi P``). For
    sequences from :func:`markov_chain` it is the lowest expected
    cross-entropy per predicted token that any model can reach (Cover &
    Thomas, *Elements of Information Theory*, ch. 4).

    Args:
        transition: ``[V, V]`` row-stochastic matrix with positive entries.

    Returns:
        The entropy rate, between 0 and ``log V``.

    Raises:
        ValueError: ``transition`` is not square or its rows do not sum
            to 1.
    """
    P = torch.as_tensor(transition, dtype=torch.float64)
    if P.dim() != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"transition must be a square matrix, got shape "
                         f"{tuple(P.shape)}")
    if (P < 0).any() or not torch.allclose(P.sum(dim=1),
                                           torch.ones(len(P),
                                                      dtype=P.dtype)):
        raise ValueError("transition must be row-stochastic: entries >= 0 "
                         "and every row summing to 1")
    pi = _stationary(P)                                       # [V]
    # 0 log 0 = 0: a zero probability contributes nothing
    row_entropy = -(P * torch.log(P.where(P > 0, torch.ones_like(P)))
                    ).sum(dim=1)                              # [V]
    return float(pi @ row_entropy)
