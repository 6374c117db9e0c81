"""Registration to a brain atlas (guide step ``align_to_ras``): orientation codes, template, registration, preview.

- :mod:`~serialoct.atlas.orientation`: 3-letter codes (``ras_input_orientation``),
  reorientation to the RAS array order ``(S, A, R)``, the ``ras_initial_rotation`` hint.
- :mod:`~serialoct.atlas.space`: :class:`VolumeGrid`, where a volume's voxels lie in RAS mm.
- :mod:`~serialoct.atlas.register`: rigid then affine SimpleITK registration to the template.
- :mod:`~serialoct.atlas.resample`: the brain in atlas space, whole or block by block.
- :mod:`~serialoct.atlas.preview`: the three-panel comparison picture.
- :mod:`~serialoct.atlas.template`: finding (cache, download) and loading the template,
  and the ``.tfm`` file; the only module here that touches disk or network.
"""

from serialoct.atlas.orientation import (
    RAS_CODE,
    ngff_orientations,
    parse_orientation,
    parse_rotation,
    reorient,
    reorient_spacing,
    rotation_matrix,
)
from serialoct.atlas.preview import alignment_preview
from serialoct.atlas.register import METRICS, AtlasRegistration, register_to_atlas
from serialoct.atlas.resample import resample_to_atlas, source_region
from serialoct.atlas.space import VolumeGrid
from serialoct.atlas.template import AtlasTemplate, find_atlas, load_atlas, read_transform, write_transform

__all__ = [
    "METRICS",
    "RAS_CODE",
    "AtlasRegistration",
    "AtlasTemplate",
    "VolumeGrid",
    "alignment_preview",
    "find_atlas",
    "load_atlas",
    "ngff_orientations",
    "parse_orientation",
    "parse_rotation",
    "read_transform",
    "register_to_atlas",
    "reorient",
    "reorient_spacing",
    "resample_to_atlas",
    "rotation_matrix",
    "source_region",
    "write_transform",
]
