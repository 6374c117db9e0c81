"""Everything that touches disk: raw tiles, OME-Zarr images, tables, metrics.

Import the submodule you need (``serialoct.io.omezarr``, ``serialoct.io.atomic``,
...); this package imports nothing on its own so that ``import serialoct`` stays
cheap.
"""

__all__: list[str] = []
