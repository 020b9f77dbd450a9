"""Datasets through TFDS: standard names, the embedded sample, image folders."""

from sslflax.data.pipeline import (
    SAMPLE_DOWNSTREAM, SAMPLE_PHOTOS, SAMPLE_PRETRAIN, DatasetError, balanced_subset_indices,
    get_builder, make_dataset, num_classes, preprocess)
