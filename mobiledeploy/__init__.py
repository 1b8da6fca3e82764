"""mobiledeploy: mobile vision models from PyTorch to phones, exact and measured."""

__version__ = "0.1.0"
