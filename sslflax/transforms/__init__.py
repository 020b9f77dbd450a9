"""Standalone pretext-task image ops in pure JAX: no Flax, no configs.

Every function works on batched NHWC arrays, under jax.jit and on sharded
batches; random ones take an explicit PRNG key. Example:

  from sslflax import transforms as T
  rotated, labels = T.all_rotations(T.to_float(images))       # (4B, H, W, C), (4B,)
  lab = T.rgb_to_lab(T.to_float(images))                      # L in [0, 100]
  views = T.stream_view(key, images, T.AugmentSpec(), 64)    # new uint8 64 px views per call
  v1, v2 = T.multi_view(key, images, (T.SIMCLR_VIEW,) * 2, (64, 64))  # SimCLR's two views
"""

from sslflax.transforms.augment import (
    FILL_MODES, AugmentSpec, bilinear_sample, color_intensity, crop_and_resize, hue_matrix,
    random_color_intensity, random_crop_boxes, random_flip, stream_view, rotate)
from sslflax.transforms.color import (
    apply_color_affine, channel_jitter, color_jitter, jitter_affine, jitter_factors, lab_to_rgb,
    linear_to_srgb, mean_luma, project_out_green_magenta, quantize, random_color_drop,
    random_grayscale, rgb_to_grayscale, rgb_to_lab, rgb_to_lightness, srgb_to_linear, to_float)
from sslflax.transforms.colorbins import (
    ab_bins, annealed_mean, compute_in_gamut_bins, default_prior, empirical_prior, nearest_bins,
    rebalance_weights, smooth_distribution, soft_encode, soft_encode_sparse)
from sslflax.transforms.geometry import (
    DOWNSAMPLE_METHODS, NEIGHBOURS, all_rotations, center_crop, crop_at, crop_patches,
    downsample_by_2, downsample_random_filter, patch_grid_extent, quadrant_tiles, random_crop,
    random_crop_offsets, random_channel_shift, random_patch_grid_offsets, random_resized_crop,
    random_tile_grid, resize, rotate90, tile_grid, untile_grid)
from sslflax.transforms.masks import (
    boundary_band, central_square_mask, fill_masked, random_block_mask)
from sslflax.transforms.noise import gaussian_noise, masking_noise
from sslflax.transforms.views import (
    BYOL_VIEWS, JITTER_OPS, MOCO_V2_VIEW, SIMCLR_VIEW, VIEW_LUMA, ViewSpec, adjust_hue,
    blur_kernel_size, color_jitter_in_order, gaussian_blur, gaussian_kernels, hsv_to_rgb,
    jitter_params, multi_crop_specs, multi_view, random_color_jitter, random_gaussian_blur,
    random_solarize, random_view, rgb_to_hsv, solarize)
from sslflax.transforms.normalize import normalize_per_tile, standardize
from sslflax.transforms.permutations import (
    apply_permutation, hamming_stats, invert_permutation, load_permutations,
    maximal_hamming_permutations)
