"""Augmented streams: each op against an independent reference (PIL, scipy, skimage, numpy),
the composed stage on one image and sharded over 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from sslflax.transforms import augment as A
from sslflax.transforms.color import mean_luma
from tests.helpers import COLLECTIVES, assert_arrays_close, sharded_over_8_devices


def noise(shape, seed=0):
  return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


@pytest.mark.parametrize("box,size", [((5.0, 10.0, 30.0, 30.0), 16),    # down, integer box
                                      ((7.7, 3.3, 12.2, 8.8), 24),       # up, fractional box
                                      ((0.0, 0.0, 50.0, 70.0), 20),      # the whole image
                                      ((10.25, 20.5, 39.25, 48.5), 33)])  # down, fractional
def test_crop_and_resize_equals_pil_resize_of_the_box(box, size):
  """PIL's bilinear resize of a box (torchvision's RandomResizedCrop) is the reference."""
  image = noise((50, 70, 3))
  top, left, height, width = box
  ours = np.asarray(A.crop_and_resize(jnp.asarray(image[None]), jnp.asarray([box]), (size, size)))[0]
  for c in range(3):
    pil = Image.fromarray(image[..., c], mode="F").resize(
        (size, size), Image.BILINEAR, box=(left, top, left + width, top + height))
    np.testing.assert_allclose(ours[..., c], np.asarray(pil), atol=1e-5)


def test_random_crop_boxes_fit_and_follow_area_and_aspect():
  h, w = 60, 80
  boxes = np.asarray(A.random_crop_boxes(jax.random.key(0), 20000, (h, w), (1e-4, 1.0)))
  top, left, height, width = boxes.T
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + height <= h + 1e-4).all() and (left + width <= w + 1e-4).all()
  fraction, ratio = height * width / (h * w), width / height
  assert fraction.min() >= 1e-4 * (1 - 1e-5) and fraction.min() < 2e-4  # reaches its minimum
  assert (ratio >= 0.75 - 1e-5).all() and (ratio <= 4 / 3 + 1e-5).all()
  # Rejection sampling as torchvision's: the (area, ratio) law conditioned on fitting,
  # drawn here with numpy. Compare the area quartiles and the share of wide crops.
  rng = np.random.default_rng(0)
  area = rng.uniform(1e-4, 1.0, 400_000)
  wide = np.exp(rng.uniform(np.log(0.75), np.log(4 / 3), 400_000))
  fits = (np.sqrt(area * h * w / wide) <= h) & (np.sqrt(area * h * w * wide) <= w)
  np.testing.assert_allclose(np.quantile(fraction, [0.25, 0.5, 0.75]),
                             np.quantile(area[fits], [0.25, 0.5, 0.75]), atol=0.02)
  assert abs(np.mean(ratio > 1) - np.mean(wide[fits] > 1)) < 0.02
  assert top.std() > 5 and left.std() > 5
  with pytest.raises(ValueError, match="0 < min <= max <= 1"):
    A.random_crop_boxes(jax.random.key(0), 2, (h, w), (0.0, 1.0))


@pytest.mark.parametrize("fill,mode", [("constant", "grid-constant"), ("nearest", "nearest"),
                                       ("reflect", "reflect")])
@pytest.mark.parametrize("angle", [30.0, -17.5, 35.0])
def test_rotate_equals_scipy_rotate(fill, mode, angle):
  image = noise((21, 27, 3), seed=1)  # odd, non-square: the centre convention matters
  ours = np.asarray(A.rotate(jnp.asarray(image[None]), jnp.array([angle]), fill=fill,
                             fill_value=0.25))[0]
  reference = scipy.ndimage.rotate(image, angle, axes=(1, 0), reshape=False, order=1, mode=mode,
                                   cval=0.25)
  np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_rotate_turns_counter_clockwise_and_crops_the_centre_directly():
  image = noise((1, 9, 9, 3), seed=2)
  quarter = np.asarray(A.rotate(jnp.asarray(image), jnp.array([90.0])))[0]
  np.testing.assert_allclose(quarter, np.rot90(image[0]), atol=1e-5)  # np.rot90: counter-clockwise
  full = A.rotate(jnp.asarray(image), jnp.array([20.0]))
  centre = A.rotate(jnp.asarray(image), jnp.array([20.0]), (5, 5))
  np.testing.assert_allclose(centre, full[:, 2:7, 2:7], atol=1e-6)


def test_random_flip_mirrors_about_half_of_the_images():
  images = noise((400, 4, 5, 3), seed=3)
  out = np.asarray(A.random_flip(jax.random.key(1), jnp.asarray(images), 0.5))
  flipped = np.array([np.array_equal(o, np.fliplr(x)) for o, x in zip(out, images)])
  kept = np.array([np.array_equal(o, x) for o, x in zip(out, images)])
  assert (flipped ^ kept).all() and 0.4 < flipped.mean() < 0.6


def test_hue_matrix_turns_the_yiq_chroma_plane_as_skimage():
  from skimage.color import rgb2yiq, yiq2rgb
  rgb = noise((50, 3), seed=4)
  angle = 40.0
  yiq = rgb2yiq(rgb[None])[0]
  theta = np.deg2rad(angle)
  i = yiq[:, 1] * np.cos(theta) - yiq[:, 2] * np.sin(theta)
  q = yiq[:, 1] * np.sin(theta) + yiq[:, 2] * np.cos(theta)
  reference = yiq2rgb(np.stack([yiq[:, 0], i, q], -1)[None])[0]
  ours = rgb @ np.asarray(A.hue_matrix(jnp.array([angle])))[0].T
  np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_color_intensity_equals_the_sequential_definition():
  images = noise((3, 8, 8, 3), seed=5)
  factors = np.array([[1.3, 0.7, 1.2], [0.8, 1.4, 0.6], [1.0, 1.0, 1.0]], np.float32)
  hue = np.array([20.0, -30.0, 0.0], np.float32)
  ours = np.asarray(A.color_intensity(jnp.asarray(images), jnp.asarray(factors), jnp.asarray(hue)))
  luma = np.array([0.2125, 0.7154, 0.0721], np.float32)
  pivot = np.asarray(mean_luma(jnp.asarray(images)))
  for k in range(3):
    b, c, s = factors[k]
    x = images[k] * b                                  # brightness
    x = b * pivot[k] + c * (x - b * pivot[k])          # contrast around the mean gray
    gray = (x @ luma)[..., None]
    x = gray + s * (x - gray)                          # saturation around each pixel's gray
    x = x @ np.asarray(A.hue_matrix(jnp.asarray(hue[k:k + 1])))[0].T
    np.testing.assert_allclose(ours[k], np.clip(x, 0, 1), atol=1e-5)
  np.testing.assert_allclose(ours[2], images[2], atol=1e-6)  # identity factors change nothing


def test_random_color_intensity_changes_about_prob_of_the_images():
  images = jnp.asarray(noise((200, 6, 6, 3), seed=6))
  out = np.asarray(A.random_color_intensity(jax.random.key(2), images, prob=0.3))
  changed = np.abs(out - np.asarray(images)).max(axis=(1, 2, 3)) > 1e-4
  assert 0.2 < changed.mean() < 0.4
  unchanged = np.asarray(A.random_color_intensity(jax.random.key(2), images, prob=0.0))
  np.testing.assert_allclose(unchanged, images, atol=1e-6)


def photo(size=96):
  from skimage import data
  from skimage.transform import resize
  return (resize(data.astronaut(), (size, size), anti_aliasing=True) * 255).astype(np.uint8)


def test_one_image_gives_distinct_views_at_every_step():
  """N = 1 is an unbounded stream: 8 steps of 16 views of one photo, all different."""
  source = jnp.broadcast_to(jnp.asarray(photo()), (16, 96, 96, 3))
  step = jax.jit(lambda key, images: A.stream_view(key, images, A.AugmentSpec(), 32))
  views = np.concatenate([np.asarray(step(jax.random.fold_in(jax.random.key(0), s), source))
                          for s in range(8)])
  assert views.shape == (128, 32, 32, 3) and views.dtype == np.uint8
  distinct = {v.tobytes() for v in views}
  assert len(distinct) == len(views)
  # Not merely distinct by a pixel: any two views differ by about 10 levels on average or more.
  flat = views.reshape(len(views), -1).astype(np.float32)
  gaps = np.abs(flat[:, None] - flat[None]).mean(-1)[np.triu_indices(len(views), 1)]
  assert gaps.min() > 3


def test_fill_crop_never_shows_the_fill():
  white = jnp.full((32, 40, 40, 3), 255, jnp.uint8)
  spec = A.AugmentSpec(crop_area=(0.5, 1.0), rotation=45.0, color_prob=0.0)
  assert int(A.stream_view(jax.random.key(3), white, spec, 24).min()) == 255
  corners = A.stream_view(jax.random.key(3), white,
                      A.AugmentSpec(crop_area=(0.5, 1.0), rotation=45.0, color_prob=0.0,
                                    fill="constant"), 24)
  assert int(corners.min()) == 0  # a rotation of the crop itself shows black corners
  with pytest.raises(ValueError, match="45 degrees"):
    A.AugmentSpec(rotation=60.0)


def sharded_augment(key, images, labels):
  del labels
  return A.stream_view(key, images, A.AugmentSpec(), 24)


def test_augment_sharded_over_8_devices_equals_one_device_with_no_collectives():
  images = jnp.asarray(np.stack([photo(64)] * 32))
  labels = jnp.zeros((32,), jnp.int32)
  key = jax.random.key(4)
  single = jax.jit(sharded_augment)(key, images, labels)
  sharded_fn = sharded_over_8_devices(sharded_augment)
  assert_arrays_close(single, sharded_fn(key, images, labels), atol=0)
  hlo = sharded_fn.lower(key, images, labels).compile().as_text()
  assert not [op for op in COLLECTIVES if op in hlo]


def test_rotation_prediction_stays_a_four_way_problem_under_35_degree_augmentation():
  """The view is turned by a in [-35, 35] degrees, then the task turns it by k * 90: the total
  lies within 35 degrees of k * 90, so the 4 classes occupy disjoint arcs, and the filled
  corners of a square view look the same after any quarter turn, so they cannot give k away."""
  from sslflax.tasks.rotation import make_rotation_batch
  angles = np.linspace(-35, 35, 71)
  for k in range(4):
    total = k * 90 + angles
    assert (np.round(total / 90) % 4 == k).all()
  white = jnp.full((8, 48, 48, 3), 255, jnp.uint8)
  spec = A.AugmentSpec(crop_area=(1.0, 1.0), rotation=35.0, fill="constant", flip=0.0,
                       color_prob=0.0)
  views = A.stream_view(jax.random.key(5), white, spec, 48)
  inputs, labels = make_rotation_batch(None, views)
  masks = np.asarray(inputs[..., 0] > 127).reshape(8, 4, 48, 48)
  assert not masks.all()  # the corners do show the fill
  for k in range(1, 4):
    np.testing.assert_array_equal(masks[:, k], masks[:, 0])
  assert labels.tolist() == [0, 1, 2, 3] * 8
