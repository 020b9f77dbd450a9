"""Linear evaluation of frozen backbones."""

from sslflax.evaluate.linear import PROBE_POOL, linear_eval, resolve_taps, train_linear_classifier
