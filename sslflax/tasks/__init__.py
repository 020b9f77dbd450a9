"""Pretext tasks, registered by name: make_task('rotation', backbone)."""

from sslflax.tasks import colorization, context, counting, jigsaw, rotation, supervised
from sslflax.tasks.base import (
    ClassifierNet, Task, classification_loss, make_task, prepare_images, register,
    registered_tasks)
