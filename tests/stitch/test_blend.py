"""Claims about blending: weights, methods, region-by-region rendering, and the seam metric."""

from __future__ import annotations

import numpy as np
import pytest

from serialoct.stitch import blend_region, blend_slice, blend_weights, measure_seams, nominal_positions_px, solve_placement

#: Float32 round-off of a weighted mean.
ROUND_OFF = 1e-5
#: Largest seam step after diffusion blending, relative to the tissue mean.
SEAM_FRACTION = 0.02


def _placement(grid=(2, 2), tile=(40, 50), overlap=0.25, jitter=None):
    layout = nominal_positions_px(grid, tile, overlap_fraction=overlap)
    if jitter is not None:
        layout = {t: p + jitter.get(t, 0.0) for t, p in layout.items()}
    return solve_placement([], layout, tile)


def _gain_tiles(placement, gains, depth=2):
    h, w = placement.tile_shape
    return {t: np.full((depth, h, w), g, np.float32) for t, g in zip(placement.tiles, gains)}


def test_diffusion_weights_of_two_overlapping_tiles_sum_to_one_across_the_overlap():
    w = blend_weights((40, 50), "diffusion", overlap_px=(10.0, 10.0))
    column = w[:, 25]
    np.testing.assert_allclose(column[30:40] + column[0:10], 1.0, atol=ROUND_OFF)  # tile b's top under tile a's bottom
    assert column[0] < 0.01 and column[20] == 1.0


def test_unknown_blending_method_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="choose one of none, average, diffusion"):
        blend_weights((4, 4), "feather")


@pytest.mark.parametrize("method", ["none", "average", "diffusion"])
def test_a_uniform_field_stays_uniform_whatever_the_method_and_subpixel_positions(method):
    placement = _placement(jitter={(1, 0): np.array([0.3, -0.6]), (1, 1): np.array([-0.4, 0.7])})
    image = blend_slice(_gain_tiles(placement, [2.0] * 4), placement, method=method)
    covered = image[0] > 0
    np.testing.assert_allclose(image[0][covered], 2.0, atol=ROUND_OFF)
    assert covered[5:-5, 5:-5].all()


def test_diffusion_hides_a_gain_step_that_average_shows():
    placement = _placement(grid=(1, 2))
    tiles = _gain_tiles(placement, [1.0, 1.2])
    row = {m: blend_slice(tiles, placement, method=m)[0, 20] for m in ("average", "diffusion", "none")}
    assert np.abs(np.diff(row["average"])).max() > 0.05  # the edges of the overlap jump by 0.1
    assert np.abs(np.diff(row["diffusion"])).max() < 0.2 / 12 * 1.6  # a smooth ramp over the 12-pixel overlap
    assert set(np.unique(row["none"][row["none"] > 0])) == {np.float32(1.0), np.float32(1.2)}  # no mixing


def test_blocks_rendered_one_at_a_time_match_the_whole_slice(rng):
    placement = _placement(grid=(3, 2), jitter={(1, 1): np.array([0.4, 0.2]), (2, 0): np.array([-0.7, 0.5])})
    h, w = placement.tile_shape
    tiles = {t: rng.uniform(size=(3, h, w)).astype(np.float32) for t in placement.tiles}
    whole = blend_slice(tiles, placement)
    rows, cols = placement.canvas_shape
    fetched = []

    def get_tile(t):
        fetched.append(t)
        return tiles[t]

    blocks = np.concatenate([np.concatenate([blend_region(get_tile, placement, (r, min(r + 32, rows), c, min(c + 32, cols)))
                                             for c in range(0, cols, 32)], axis=2) for r in range(0, rows, 32)], axis=1)
    np.testing.assert_array_equal(blocks, whole)
    corner = blend_region(get_tile, placement, (0, 10, 0, 10))
    assert corner.shape == (3, 10, 10) and fetched[-1] == (0, 0)  # only the tile that touches the block
    with pytest.raises(ValueError, match="empty region"):
        blend_region(get_tile, placement, (5, 5, 0, 10))


def test_seam_metric_sees_a_gain_step_at_tile_edges_and_not_after_diffusion(rng):
    placement = _placement(grid=(2, 2), tile=(60, 60), overlap=0.2)
    h, w = placement.tile_shape
    gains = [1.0, 1.08, 0.95, 1.04]
    tiles = {t: (g * (1.0 + 0.02 * rng.normal(size=(1, h, w)))).astype(np.float32) for t, g in zip(placement.tiles, gains)}
    images = {m: blend_slice(tiles, placement, method=m)[0] for m in ("average", "diffusion")}
    average = measure_seams(images["average"], placement, mask=images["average"] > 0)  # all of it is "tissue"
    diffusion = measure_seams(images["diffusion"], placement, mask=images["diffusion"] > 0)
    assert len(average.steps) >= 4 and average.max > 0.03  # half of an 8 % gain difference
    assert diffusion.max < SEAM_FRACTION and diffusion.mean < average.mean / 2
    with pytest.raises(ValueError, match="canvas shape"):
        measure_seams(np.zeros((3, 3)), placement)
