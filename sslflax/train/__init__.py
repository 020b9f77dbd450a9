"""Training: state, the jitted step, and the loop with checkpoints."""

from sslflax.train.state import TrainState, create_train_state
from sslflax.train.step import train_step
