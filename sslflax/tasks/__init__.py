"""Pretext tasks, registered by name: make_task('rotation', backbone)."""

from sslflax.tasks import (colorization, context, counting, denoising, exemplar, jigsaw, multitask,
                           patch_location, rotation, supervised)
from sslflax.tasks.base import (
    ClassifierNet, LateFusionNet, Task, classification_loss, make_task, prepare_images, register,
    registered_tasks)
