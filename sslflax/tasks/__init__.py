"""Pretext tasks, registered by name: make_task('rotation', backbone)."""

from sslflax.tasks import (bigan, byol, colorization, context, counting, cpc, deepcluster,
                           denoising, exemplar, jigsaw, moco, multitask, patch_location, rotation,
                           simclr, supervised, swav)
from sslflax.tasks.base import (
    ClassifierNet, LateFusionNet, Task, classification_loss, make_task, prepare_images, register,
    registered_tasks)
