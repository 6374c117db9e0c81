"""Per-slice corrections of the reconstruction workflow: pure functions on arrays.

- :mod:`~serialoct.correct.resample`: mosaic grid to isotropic voxels (``resample_mosaic_grid``).
- :mod:`~serialoct.correct.illumination`: BaSiC flat-field and darkfield (``fix_illumination``).
- :mod:`~serialoct.correct.normalize`: background to 0, one scale per slice (``normalize``).
"""

from serialoct.correct.illumination import (
    IlluminationCorrected,
    IlluminationFit,
    PooledTile,
    apply_illumination,
    estimate_illumination,
    fix_illumination,
    pool_tile,
)
from serialoct.correct.normalize import (
    IntensityHistogram,
    Normalization,
    Normalized,
    apply_normalization,
    estimate_normalization,
    intensity_histogram,
    normalize,
)
from serialoct.correct.resample import (
    ResampledMosaic,
    iter_mosaic_tiles,
    mosaic_grid_shape,
    resample_mosaic_grid,
    resample_tile_isotropic,
    resampled_tile_shape,
)

__all__ = [
    "IlluminationCorrected",
    "IlluminationFit",
    "IntensityHistogram",
    "Normalization",
    "Normalized",
    "PooledTile",
    "ResampledMosaic",
    "apply_illumination",
    "apply_normalization",
    "estimate_illumination",
    "estimate_normalization",
    "fix_illumination",
    "intensity_histogram",
    "iter_mosaic_tiles",
    "mosaic_grid_shape",
    "normalize",
    "pool_tile",
    "resample_mosaic_grid",
    "resample_tile_isotropic",
    "resampled_tile_shape",
]
