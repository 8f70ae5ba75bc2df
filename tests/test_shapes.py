"""The generated data sets with known factors: their grids, their pictures (pixels against the geometry the
docstrings promise) and how they load (splits, factors carried by the data objects, determinism)."""
import colorsys
import math

import numpy as np
import pytest
import torch

from vae.data import (
    DATASETS,
    FACTOR_SETS,
    GENERATED_DATASETS,
    DataSplit,
    ImageData,
    Limits,
    list_datasets,
    load_dataset,
    render_images,
)
from vae.data.factors import COLOUR_SHAPES, SHAPES, SHAPES32

# ---------------------------------------------------------------------------------------------
# The grids
# ---------------------------------------------------------------------------------------------


def test_shapes_grid_is_dsprites_grid():
    assert SHAPES.sizes == (3, 6, 40, 32, 32) and len(SHAPES) == 737_280
    assert SHAPES.names == ("shape", "scale", "orientation", "x position", "y position")
    shapes, scales, angles, xs, ys = SHAPES.values
    assert shapes == ("square", "ellipse", "heart")
    np.testing.assert_allclose(scales, np.linspace(0.5, 1, 6))
    np.testing.assert_allclose(angles, np.linspace(0, 2 * math.pi, 40))
    np.testing.assert_allclose(xs, np.linspace(0, 1, 32))
    assert xs == ys and SHAPES.image_size == 64 and SHAPES.channels == 1


def test_views_are_documented_subsets():
    assert SHAPES32.sizes == (3, 6, 10, 16, 16) and len(SHAPES32) == 46_080 and SHAPES32.image_size == 32
    assert SHAPES32.values[2] == SHAPES.values[2][::4] and SHAPES32.values[3] == SHAPES.values[3][::2]
    assert COLOUR_SHAPES.sizes == (10, 10, 10, 4, 4, 5) and len(COLOUR_SHAPES) == 80_000
    assert COLOUR_SHAPES.channels == 3 and COLOUR_SHAPES.names[COLOUR_SHAPES.label_factor] == "shape"
    assert set(FACTOR_SETS) == GENERATED_DATASETS <= set(DATASETS)


@pytest.mark.parametrize("name", sorted(GENERATED_DATASETS))
def test_catalogue_names_the_factors(name):
    grid = FACTOR_SETS[name]
    assert f"factors: {grid.summary()}" in DATASETS[name], "the description is written by hand: keep it in step"
    assert f"{len(grid):,}" in DATASETS[name]
    row = next(r for r in list_datasets() if r["name"] == name)
    assert row["available"] is True and "generated" in row["source"]


def test_grid_index_round_trip_and_refusals():
    flat = np.array([0, 1, 31, 32, len(SHAPES) - 1])
    f = SHAPES.unravel(flat)
    assert f[1].tolist() == [0, 0, 0, 0, 1] and f[3].tolist() == [0, 0, 0, 1, 0]
    assert f[-1].tolist() == [2, 5, 39, 31, 31]
    np.testing.assert_array_equal(SHAPES.ravel(f), flat)
    with pytest.raises(ValueError, match="out of range"):
        render_images("shapes", np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        render_images("shapes", np.zeros((2, 4), dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# The pictures
# ---------------------------------------------------------------------------------------------


def sprite(grid, shape, scale, angle, x, y):
    return render_images(grid, np.array([[shape, scale, angle, x, y]]))[0, 0]


def test_square_is_the_promised_block_of_pixels():
    for kx, ky in [(0, 0), (31, 0), (7, 20), (31, 31)]:
        img = sprite(SHAPES, 0, 5, 0, kx, ky)                  # scale 1: 20 x 20, centre at 16 + k
        expected = np.zeros((64, 64), np.uint8)
        expected[6 + ky:26 + ky, 6 + kx:26 + kx] = 255
        np.testing.assert_array_equal(img, expected)
    # scale 0.5 at 32 x 32: a 5-pixel square centred on a pixel boundary (8.0) covers half of the pixels at its
    # edges, which count as inside; the corner pixels (a quarter covered) do not
    expected = np.zeros((32, 32), np.uint8)
    expected[5:11, 5:11] = 255
    expected[[5, 5, 10, 10], [5, 10, 5, 10]] = 0
    np.testing.assert_array_equal(sprite(SHAPES32, 0, 0, 0, 0, 0), expected)


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_one_position_step_is_one_pixel(shape):
    a = sprite(SHAPES, shape, 3, 7, 10, 12)
    np.testing.assert_array_equal(np.roll(a, 1, axis=1), sprite(SHAPES, shape, 3, 7, 11, 12))
    np.testing.assert_array_equal(np.roll(a, 1, axis=0), sprite(SHAPES, shape, 3, 7, 10, 13))
    small = sprite(SHAPES32, shape, 3, 2, 4, 4)
    np.testing.assert_array_equal(np.roll(small, 1, axis=1), sprite(SHAPES32, shape, 3, 2, 5, 4))


def centroid(img):
    rows, cols = np.nonzero(img)
    return cols.mean() + 0.5, rows.mean() + 0.5


def test_centre_and_size_follow_position_and_scale():
    for kx, ky in [(0, 31), (16, 5)]:
        cx, cy = centroid(sprite(SHAPES, 1, 2, 0, kx, ky))    # the ellipse is symmetric about its centre
        assert (cx, cy) == pytest.approx((16 + kx, 16 + ky), abs=0.05)
    for shape in range(3):
        areas = [int((sprite(SHAPES, shape, s, 0, 16, 16) > 0).sum()) for s in (0, 5)]
        assert areas[1] / areas[0] == pytest.approx(4.0, rel=0.1), (shape, areas)   # area grows as scale^2


def test_orientation_turns_the_ellipse_counter_clockwise_as_displayed():
    for k in (0, 3, 8, 13, 17):
        img = sprite(SHAPES, 1, 5, k, 16, 16)
        rows, cols = np.nonzero(img)
        x, y = cols - cols.mean(), -(rows - rows.mean())       # y up
        cov = np.cov(np.stack([x, y]))
        axis = np.linalg.eigh(cov)[1][:, -1]                   # the long axis
        angle = math.atan2(axis[1], axis[0]) % math.pi
        expected = SHAPES.values[2][k] % math.pi
        diff = min(abs(angle - expected), math.pi - abs(angle - expected))
        assert diff < math.radians(4), (k, math.degrees(angle), math.degrees(expected))


def test_heart_points_down_and_the_last_orientation_is_the_first():
    img = sprite(SHAPES, 2, 5, 0, 16, 16)
    rows, cols = np.nonzero(img)
    bottom = cols[rows == rows.max()]
    assert abs(bottom.mean() + 0.5 - 32) < 1.0 and len(bottom) <= 3, "the tip is one point on the axis"
    top_runs = np.flatnonzero(np.diff(np.r_[0, img[rows.min() + 1] > 0, 0]))
    assert len(top_runs) == 4, "two lobes at the top"
    np.testing.assert_array_equal(sprite(SHAPES, 2, 5, 0, 3, 4), sprite(SHAPES, 2, 5, 39, 3, 4))


def test_the_laptop_view_is_the_same_geometry_at_half_the_resolution():
    for s, c, o, k in [(0, 5, 1, 3), (1, 2, 6, 10), (2, 4, 9, 15)]:
        big = sprite(SHAPES, s, c, 4 * o, 2 * k, 2 * k)
        small = sprite(SHAPES32, s, c, o, k, k)
        assert np.subtract(centroid(big), np.multiply(centroid(small), 2)) == pytest.approx((0, 0), abs=1.0)
        assert (small > 0).sum() * 4 == pytest.approx((big > 0).sum(), rel=0.2)


def test_each_step_of_the_heart_changes_the_picture():
    """dSprites chose its steps so that each changes the picture; the heart has no symmetry, so every one of its
    234 sprites (6 scales x 39 orientations; the 40th is the first) must differ, at both resolutions."""
    for grid, position in ((SHAPES, 16), (SHAPES32, 8)):
        n_angles = grid.sizes[2] - (1 if grid is SHAPES else 0)
        f = np.array([[2, c, o, position, position] for c in range(6) for o in range(n_angles)])
        pictures = render_images(grid, f).reshape(len(f), -1)
        assert len(np.unique(pictures, axis=0)) == len(f), grid.name


def rgb(hue, s, v):
    return np.rint(np.array(colorsys.hsv_to_rgb(hue, s, v)) * 255)


def test_colour_scene_pixels_are_the_factor_colours():
    # floor hue 0.2, wall hue 0.6, object hue 0.0, scale 1.25, square, orientation 0 degrees
    img = render_images(COLOUR_SHAPES, np.array([[2, 6, 0, 3, 0, 2]]))[0].astype(float)
    np.testing.assert_allclose(img[:, 2, 2], rgb(0.6, 0.55, 0.95), atol=1)      # wall, top left
    np.testing.assert_allclose(img[:, 29, 2], rgb(0.2, 0.75, 0.65), atol=1)     # floor, bottom left
    red = img[:, 19, 16]
    assert red[0] > 150 and red[1] < 40 and red[2] < 40, red                   # the object, lit
    for k, region in [(0, (29, 2)), (1, (2, 2)), (2, (19, 16))]:                # each hue changes its region only
        f = np.array([[2, 6, 0, 3, 0, 2]])
        f[0, k] = 5
        other = render_images(COLOUR_SHAPES, f)[0].astype(float)
        changed = np.abs(other - img).sum(0) > 3
        assert changed[region], k
        assert changed.mean() < 0.9, k


def test_colour_scene_orientation_tilts_the_horizon():
    def horizon(orientation, column):
        img = render_images(COLOUR_SHAPES, np.array([[2, 6, 0, 0, 0, orientation]]))[0]
        wall = rgb(0.6, 0.55, 0.95)
        return int(np.argmax(np.abs(img[:, :, column].astype(float) - wall[:, None]).sum(0) > 30))
    assert horizon(2, 1) == horizon(2, 30) == 19                       # 0 degrees: level
    assert horizon(4, 1) - horizon(4, 30) > 10, "+30 degrees: turned counter-clockwise, the right end rises"
    assert horizon(0, 30) - horizon(0, 1) > 10, "-30 degrees: clockwise"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def test_load_shapes32_carries_factors_and_is_deterministic():
    data = load_dataset("shapes32")
    assert data.train.x.shape == (41_472, 1, 32, 32) and data.test.x.shape == (4_608, 1, 32, 32)
    assert data.train.x.dtype == torch.uint8 and data.has_factors
    assert data.factor_names == list(SHAPES32.names) and data.class_names == ["square", "ellipse", "heart"]
    assert [len(v) for v in data.factor_values] == list(SHAPES32.sizes)
    for part in (data.train, data.test):
        assert part.factors.dtype == torch.int64 and part.factors.shape == (len(part), 5)
        assert torch.equal(part.y, part.factors[:, 0]), "y is the shape"
    some = data.test.factors[:200].numpy()
    np.testing.assert_array_equal(render_images(SHAPES32, some), data.test.x[:200].numpy())
    flat = np.concatenate([SHAPES32.ravel(p.factors.numpy()) for p in (data.train, data.test)])
    assert len(np.unique(flat)) == len(SHAPES32), "train and test partition the grid"
    assert torch.bincount(data.test.y).tolist() == [1536] * 3, "stratified by shape"
    again = load_dataset("shapes32")
    assert torch.equal(again.test.x, data.test.x) and torch.equal(again.train.factors, data.train.factors)
    other = load_dataset("shapes32", seed=1, max_train=10, max_test=10)
    assert not torch.equal(other.test.factors, data.test.factors[:10])


def test_subsets_are_prefixes_of_the_full_split_and_render_only_them():
    full = load_dataset("colour-shapes")
    part = load_dataset("colour-shapes", max_train=50, max_test=20)
    assert part.train.x.shape == (50, 3, 32, 32) and part.test.x.shape == (20, 3, 32, 32)
    assert torch.equal(part.train.x, full.train.x[:50]) and torch.equal(part.test.factors, full.test.factors[:20])
    assert part.class_names == ["square", "cylinder", "sphere", "capsule"]
    assert torch.equal(part.test.y, part.test.factors[:, 4])


def test_full_shapes_loads_a_slice_with_64_pixel_sprites():
    data = load_dataset("shapes", max_train=64, max_test=32, limits=Limits(max_images=10))
    assert data.train.x.shape == (64, 1, 64, 64) and data.test.factors.shape == (32, 5)
    assert data.factor_values[2][39] == pytest.approx(2 * math.pi)
    np.testing.assert_array_equal(render_images(SHAPES, data.train.factors.numpy()), data.train.x.numpy())
    resized = load_dataset("shapes", max_train=4, max_test=4, image_size=32)
    assert resized.train.x.shape == (4, 1, 32, 32) and resized.train.factors.shape == (4, 5)


def test_data_objects_refuse_inconsistent_factors():
    x = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="factors"):
        ImageData(x, None, torch.zeros(2, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="factors"):
        ImageData(x, None, torch.zeros(3, 5, dtype=torch.int32))
    ok = ImageData(x, None, torch.zeros(3, 2, dtype=torch.int64))
    bare = ImageData(x, None)
    with pytest.raises(ValueError, match="train.factors"):
        DataSplit("d", "s", bare, ok, None, ["a", "b"], [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="both"):
        DataSplit("d", "s", ok, ok, None, ["a", "b"], None)
    bad = ImageData(x, None, torch.tensor([[0, 0], [0, 2], [0, 0]]))
    with pytest.raises(ValueError, match="outside"):
        DataSplit("d", "s", ok, bad, None, ["a", "b"], [[0, 1], [0, 1]])
    assert not DataSplit("d", "s", bare, bare, None).has_factors
