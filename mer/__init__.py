"""mer: micro-expression recognition experiments with PyTorch Lightning."""

__version__ = "0.1.0"
