"""Linear evaluation of frozen backbones."""

from sslflax.evaluate.linear import linear_eval, resolve_taps, train_linear_classifier
