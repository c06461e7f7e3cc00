"""The book's models, one module per family: an MLP whose every
gradient-relevant choice is a knob, recurrent sequence models, and a small
causal Transformer."""

from .mlp import ACTIVATIONS, MLP, NORMS, Block
from .sequence import CELLS, SequenceModel
from .transformer import NORM_POSITIONS, Transformer, TransformerBlock

__all__ = ["MLP", "Block", "SequenceModel", "Transformer", "TransformerBlock",
           "ACTIVATIONS", "NORMS", "CELLS", "NORM_POSITIONS"]
