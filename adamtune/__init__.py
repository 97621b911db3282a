"""adamtune: find the best torch.optim.Adam hyperparameters for your own model and data."""

__version__ = "0.1.0"
