"""skelmae: self-supervised skeleton action recognition with masked autoencoders."""

__version__ = "0.1.0"
