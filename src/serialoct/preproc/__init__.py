"""Preprocessing: raw tiles to mosaic grids, galvo fix, shifts and the slice config."""
