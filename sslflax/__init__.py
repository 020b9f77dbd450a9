"""sslflax: self-supervised pretext tasks in JAX/Flax."""

__version__ = "0.1.0"
