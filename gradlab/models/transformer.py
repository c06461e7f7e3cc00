"""A small causal Transformer language model, post-LN or pre-LN."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._validate import check_choice, check_positive_int

__all__ = ["Transformer", "TransformerBlock", "NORM_POSITIONS",
           "TRANSFORMER_INITS"]

NORM_POSITIONS = ("post", "pre")
TRANSFORMER_INITS = ("xavier", "default")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``t`` sees positions
    ``<= t`` only (Vaswani et al. 2017).

    The projections are ``nn.Linear`` modules called in the forward pass, so
    gradient diagnostics see each of them as a layer.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, d]
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)            # 3 x [B, T, d]
        # [B, T, d] -> [B, heads, T, d / heads]
        q, k, v = (t.view(B, T, self.num_heads, d // self.num_heads)
                   .transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True,
            dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, d)           # [B, T, d]
        return self.out(y)


class TransformerBlock(nn.Module):
    """Attention then a feed-forward layer, each wrapped in a residual
    connection and a LayerNorm.

    ``post`` (Vaswani et al. 2017) normalizes after the residual sum:

    .. math:: x \\leftarrow \\mathrm{LN}(x + f(x)),

    so every path from the output back to the input passes through
    ``num_layers`` LayerNorms. ``pre`` (Xiong et al. 2020) normalizes the
    branch's input and leaves the sum alone:

    .. math:: x \\leftarrow x + f(\\mathrm{LN}(x)),

    which keeps an identity path from the loss to every block.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int,
                 norm_position: str, dropout: float):
        super().__init__()
        self.norm_position = norm_position
        self.attn = CausalSelfAttention(d_model, num_heads, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(),
                                nn.Linear(d_ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, d]
        if self.norm_position == "pre":
            x = x + self.drop(self.attn(self.norm1(x)))
            return x + self.drop(self.ff(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ff(x)))

    def extra_repr(self) -> str:
        return f"norm_position={self.norm_position!r}"


class Transformer(nn.Module):
    """A causal Transformer language model: tokens in, next-token logits out.

    Token and learned position embeddings, ``num_layers`` blocks
    (:class:`TransformerBlock`), then a linear head. With
    ``norm_position="pre"`` a final LayerNorm precedes the head, as in
    Xiong et al. (2020), since the blocks' sums are never normalized.

    Args:
        vocab_size: number of token ids.
        d_model: width of the residual stream.
        num_layers: number of blocks.
        num_heads: attention heads; must divide ``d_model``.
        max_len: longest sequence the position embedding covers.
        d_ff: hidden width of the feed-forward layers (default
            ``4 * d_model``).
        norm_position: ``"post"`` (Vaswani et al. 2017, "Attention is all
            you need") or ``"pre"`` (Xiong et al. 2020, "On layer
            normalization in the Transformer architecture").
        dropout: dropout on attention weights and on each branch's output.
        init: ``"xavier"``: Glorot-uniform on every weight matrix
            (embeddings included) and zero biases, as in the papers;
            ``"default"``: torch's own initialization.
        generator: optional source of randomness for ``"xavier"``.

    Attributes:
        blocks: ``nn.ModuleList`` of the blocks in forward order.

    Shape:
        input ``[B, T]`` (long, ``T <= max_len``), output
        ``[B, T, vocab_size]``.

    Example:
        >>> model = Transformer(16, d_model=32, num_layers=6, num_heads=4,
        ...                     max_len=24, norm_position="pre")
        >>> model(torch.randint(0, 16, (8, 24))).shape
        torch.Size([8, 24, 16])
    """

    def __init__(self, vocab_size: int, *, d_model: int, num_layers: int,
                 num_heads: int, max_len: int, d_ff: int | None = None,
                 norm_position: str = "post", dropout: float = 0.0,
                 init: str = "xavier",
                 generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model),
                            ("num_layers", num_layers),
                            ("num_heads", num_heads), ("max_len", max_len)):
            check_positive_int(name, value)
        if d_ff is not None:
            check_positive_int("d_ff", d_ff)
        check_choice("norm_position", norm_position, NORM_POSITIONS)
        check_choice("init", init, TRANSFORMER_INITS)
        if d_model % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide "
                             f"d_model={d_model}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.max_len = max_len
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff or 4 * d_model,
                             norm_position, dropout)
            for _ in range(num_layers))
        self.final_norm = (nn.LayerNorm(d_model) if norm_position == "pre"
                           else nn.Identity())
        self.head = nn.Linear(d_model, vocab_size)
        if init == "xavier":
            self._init_xavier_(generator)

    @torch.no_grad()
    def _init_xavier_(self, generator):
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.xavier_uniform_(p, generator=generator)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(f"Transformer expects token ids [batch, time] "
                             f"of dtype long, got {tuple(tokens.shape)} "
                             f"{tokens.dtype}")
        T = tokens.shape[1]
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len="
                             f"{self.max_len}")
        where = torch.arange(T, device=tokens.device)
        x = self.tokens(tokens) + self.positions(where)  # [B, T, d]
        for block in self.blocks:
            x = block(x)                                 # [B, T, d]
        return self.head(self.final_norm(x))             # [B, T, vocab]
