"""repetita: measurements, laws and recipes for data-constrained language-model training."""

__version__ = "0.1.0"
