"""rlloop: a JAX-native, vectorised AlphaZero research framework."""

__version__ = "0.1.0"
