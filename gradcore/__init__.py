"""gradcore: machine-checked claims about gradients in deep networks."""
from ._validate import GradcoreInputError

__all__ = ["GradcoreInputError"]
__version__ = "0.1.0"
