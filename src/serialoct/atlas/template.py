"""The atlas template on disk: find it (local file, cache, download), load it, and the transform file.

This is the one module of :mod:`serialoct.atlas` that touches disk or network.

Finding the template (:func:`find_atlas`)
----------------------------------------
1. ``atlas_path``, when given: an NRRD (``.nrrd``), NIfTI (``.nii``,
   ``.nii.gz``) or OME-Zarr (``.zarr``, ``.ome.zarr``) template.
2. A cached Allen CCFv3 average template at ``allen_resolution`` in the cache
   folder (``platformdirs`` user cache of ``serialoct``, subfolder ``atlas``).
3. A download into that cache: through ``brainglobe-atlasapi`` when it is
   installed (atlas ``allen_mouse_{res}um``, saved as NIfTI), otherwise, or
   if that fails, from the Allen Institute's server
   (:data:`ALLEN_TEMPLATE_URL`) with a short timeout.
4. Otherwise an :class:`~serialoct.errors.InputError` that says how to give
   a template with ``--atlas_path``.

Orientation of a loaded template (:func:`load_atlas`)
----------------------------------------------------
The template comes back in the RAS array order ``(S, A, R)``. The
orientation of the file is taken from, in order: the ``orientation``
argument; the Allen CCFv3 convention when the file has the CCFv3 grid at
10/25/50/100 µm (the Allen NRRD headers declare an identity LPS frame and
µm voxels, which would misplace every axis; the CCFv3 axes are
anterior->posterior, superior->inferior, left->right, so the array SimpleITK
returns is ``"RIP"``); the NIfTI/NRRD header's direction cosines (nearest axis);
the OME-Zarr axes' anatomical orientations; else the RAS order (logged).
A NRRD/NIfTI whose voxels are 1 or more "mm" is a mouse template in µm (a
mouse brain is about 10 mm long) and is scaled to mm (logged).
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serialoct.atlas.orientation import RAS_CODE, orientation_from_ngff, parse_orientation, reorient
from serialoct.atlas.register import AtlasRegistration
from serialoct.atlas.space import VolumeGrid
from serialoct.errors import FormatError, InputError
from serialoct.io.atomic import atomic_output

__all__ = [
    "ALLEN_RESOLUTIONS_UM",
    "ALLEN_TEMPLATE_URL",
    "AtlasTemplate",
    "default_cache_dir",
    "find_atlas",
    "load_atlas",
    "read_transform",
    "write_transform",
]

log = logging.getLogger(__name__)

ALLEN_RESOLUTIONS_UM = (10, 25, 50, 100)
ALLEN_TEMPLATE_URL = (
    "http://download.alleninstitute.org/informatics-archive/current-release/"
    "mouse_ccf/average_template/average_template_{res}.nrrd"
)
#: Seconds a download may wait on the server (connection or next bytes), not the whole transfer.
DOWNLOAD_TIMEOUT_S = 20.0
#: The CCFv3 template's extent (AP, DV, LR) in µm: its SimpleITK size is this over the resolution.
_CCF_EXTENT_UM = (13200, 8000, 11400)
#: Array order of SimpleITK's CCFv3 array: (LR, DV, AP) growing toward right, inferior, posterior.
CCF_ARRAY_ORIENTATION = "RIP"
_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".zarr", ".ome.zarr")
_LPS = np.diag([-1.0, -1.0, 1.0])  # ITK's LPS frame <-> RAS (its own inverse)


@dataclass(frozen=True, eq=False)
class AtlasTemplate:
    """An atlas template in the RAS array order.

    Attributes
    ----------
    image : ndarray, shape (S, A, R), float32
    grid : VolumeGrid
        Orientation ``"SAR"``; spacing in mm.
    source : str
        The file it came from.
    """

    image: np.ndarray
    grid: VolumeGrid
    source: str


def default_cache_dir() -> Path:
    """Where downloaded templates are kept: the user cache folder of serialoct, ``atlas/``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("serialoct")) / "atlas"


def _is_supported(path: Path) -> bool:
    return path.name.lower().endswith(_SUFFIXES)


def find_atlas(
    atlas_path: str | os.PathLike | None,
    resolution_um: int,
    cache_dir: str | os.PathLike | None = None,
    *,
    url_template: str = ALLEN_TEMPLATE_URL,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    use_brainglobe: bool = True,
) -> Path:
    """The template file to register to (module docstring: local file, cache, download).

    Parameters
    ----------
    atlas_path : path or None
        ``atlas_path``: a local template; None or empty uses the Allen CCFv3.
    resolution_um : {10, 25, 50, 100}
        ``allen_resolution``.
    cache_dir : path, optional
        Cache folder (default :func:`default_cache_dir`).
    url_template : str
        Download URL with ``{res}`` for the resolution.
    timeout_s : float
        Network timeout of the download.
    use_brainglobe : bool
        Try ``brainglobe-atlasapi`` first when it is installed.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        If ``atlas_path`` does not exist or is not NRRD/NIfTI/OME-Zarr, or no
        template is cached and none could be downloaded (the message says how
        to give one).
    ValueError
        If ``resolution_um`` is not one of 10, 25, 50, 100.
    """
    if atlas_path:
        path = Path(atlas_path)
        if not path.exists():
            raise InputError(path, "atlas_path does not exist; give an NRRD, NIfTI or OME-Zarr template")
        if not _is_supported(path):
            raise InputError(
                path, f"atlas_path is not a template this step reads; expected one of {', '.join(_SUFFIXES)}"
            )
        log.info("atlas template: %s (atlas_path)", path)
        return path
    if resolution_um not in ALLEN_RESOLUTIONS_UM:
        raise ValueError(
            f"allen_resolution {resolution_um!r}: expected one of {', '.join(map(str, ALLEN_RESOLUTIONS_UM))} (µm)"
        )
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    nrrd = cache / f"average_template_{resolution_um}.nrrd"
    nifti = cache / f"allen_mouse_{resolution_um}um.nii.gz"
    for cached in (nifti, nrrd):
        if cached.is_file():
            log.info("atlas template: %s (cached)", cached)
            return cached
    problems = []
    if use_brainglobe:
        try:
            return _fetch_brainglobe(resolution_um, nifti)
        except ImportError:
            problems.append("brainglobe-atlasapi is not installed")
        except Exception as exc:  # brainglobe raises its own errors for a failed download: fall back to the URL
            problems.append(f"brainglobe-atlasapi failed ({type(exc).__name__}: {exc})")
    url = url_template.format(res=resolution_um)
    try:
        return _download(url, nrrd, timeout_s)
    except (OSError, ValueError) as exc:  # URLError, timeouts and refusals are OSErrors
        problems.append(f"downloading {url} failed ({getattr(exc, 'reason', exc)})")
    raise InputError(
        nrrd,
        f"no Allen CCFv3 template at {resolution_um} µm: not cached, and {'; '.join(problems)}. "
        "Give a local template with --atlas_path FILE (NRRD, NIfTI or OME-Zarr), or fetch "
        f"{url} on a machine with network access and copy it to {nrrd}",
    )


def _download(url: str, dest: Path, timeout_s: float) -> Path:
    log.info("downloading the atlas template %s (once; cached in %s)", url, dest.parent)
    with urllib.request.urlopen(url, timeout=timeout_s) as response, atomic_output(dest) as tmp:
        with open(tmp, "wb") as handle:
            shutil.copyfileobj(response, handle, length=1 << 20)
        with open(tmp, "rb") as handle:
            if handle.read(4) != b"NRRD":
                raise ValueError("the server did not send an NRRD file")
    return dest


def _fetch_brainglobe(resolution_um: int, dest: Path) -> Path:
    import SimpleITK as sitk
    from brainglobe_atlasapi import BrainGlobeAtlas

    name = f"allen_mouse_{resolution_um}um"
    log.info("fetching the atlas template %s through brainglobe-atlasapi", name)
    atlas = BrainGlobeAtlas(name, brainglobe_dir=str(dest.parent / "brainglobe"), check_latest=False)
    reference = np.asarray(atlas.reference, dtype=np.float32)
    # BrainGlobe names the corner each axis starts from ("asr": from anterior,
    # superior, right); our codes name where it goes (P, I, L).
    opposite = {"a": "P", "p": "A", "s": "I", "i": "S", "r": "L", "l": "R"}
    code = "".join(opposite[c] for c in str(atlas.metadata["orientation"]).lower())
    spacing = tuple(float(r) / 1000.0 for r in atlas.metadata["resolution"])
    grid = VolumeGrid(reference.shape, spacing, code)
    image = sitk.GetImageFromArray(reference)
    image.SetSpacing(tuple(reversed(grid.spacing_mm)))
    image.SetOrigin(tuple(_LPS @ np.asarray(grid.origin_mm)))
    image.SetDirection(tuple((_LPS @ grid.direction[:, ::-1]).ravel()))
    with atomic_output(dest) as tmp:
        staged = tmp.with_name(tmp.name + ".nii.gz")  # SimpleITK picks the format from the suffix
        sitk.WriteImage(image, str(staged), useCompression=True)
        staged.rename(tmp)
    return dest


def load_atlas(
    path: str | os.PathLike,
    *,
    resolution_um: float | None = None,
    orientation: str | None = None,
) -> AtlasTemplate:
    """Load a template (NRRD, NIfTI or OME-Zarr) in the RAS array order, spacing in mm.

    Parameters
    ----------
    path : path
    resolution_um : float, optional
        For an OME-Zarr pyramid, the level whose voxels are closest to this
        size is read (default: level 0). Ignored for NRRD/NIfTI.
    orientation : str, optional
        The file's array orientation code, overriding what the file says
        (module docstring).

    Returns
    -------
    AtlasTemplate

    Raises
    ------
    InputError
        If ``path`` does not exist.
    FormatError
        If it cannot be read as a 3D image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "atlas template does not exist")
    if orientation is not None:
        orientation = parse_orientation(orientation, name="atlas orientation")
    if path.name.lower().endswith((".zarr", ".ome.zarr")) or path.is_dir():
        array, grid = _read_ome_zarr(path, resolution_um, orientation)
    else:
        array, grid = _read_itk(path, orientation)
    image = np.ascontiguousarray(reorient(array, grid.orientation), dtype=np.float32)
    ras_grid = grid.reoriented()
    log.info(
        "atlas template %s: %s voxels of %s mm, file orientation %s",
        path.name, ras_grid.shape, tuple(round(s, 6) for s in ras_grid.spacing_mm), grid.orientation,
    )
    return AtlasTemplate(image, ras_grid, str(path))


def _read_ome_zarr(path: Path, resolution_um: float | None, orientation: str | None) -> tuple[np.ndarray, VolumeGrid]:
    from serialoct.io.omezarr import open_ome_zarr

    zimage = open_ome_zarr(path)
    space = [a for a in zimage.multiscale.axes if a.type == "space"]
    if len(space) != 3:
        raise FormatError(path, f"atlas template has {len(space)} space axes ({zimage.axis_names}); expected 3")
    level = 0
    if resolution_um is not None:
        sizes = [max(zimage.voxel_size_mm(k)) * 1000.0 for k in range(zimage.n_levels)]
        level = int(np.argmin([abs(np.log(s / resolution_um)) for s in sizes]))
    array = np.asarray(zimage.read(level))
    if array.ndim != 3:  # channel or time axes of length 1
        axes = zimage.multiscale.axes
        array = array.reshape([n for n, a in zip(array.shape, axes, strict=True) if a.type == "space"])
    if orientation is None:
        try:
            orientation = orientation_from_ngff([a.orientation for a in space])
        except ValueError as err:
            raise FormatError(path, str(err)) from None
    if orientation is None:
        log.warning("%s: axes carry no anatomical orientation; taking them as RAS-ordered (%s)", path, RAS_CODE)
        orientation = RAS_CODE
    grid = VolumeGrid.from_ngff(array.shape, zimage.voxel_size_mm(level), zimage.translation_mm(level), orientation)
    return array, grid


def _read_itk(path: Path, orientation: str | None) -> tuple[np.ndarray, VolumeGrid]:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise FormatError(path, f"not a readable NRRD/NIfTI image ({str(err).strip().splitlines()[-1]})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise FormatError(
            path,
            f"atlas template is {image.GetDimension()}-D with {image.GetNumberOfComponentsPerPixel()} "
            "components per voxel; expected a 3-D scalar image",
        )
    array = sitk.GetArrayFromImage(image)
    size = image.GetSize()
    ccf = next((r for r in ALLEN_RESOLUTIONS_UM if size == tuple(e // r for e in _CCF_EXTENT_UM)), None)
    if ccf is not None:
        log.info("%s has the Allen CCFv3 grid at %d µm: using the CCFv3 axes, not its header", path.name, ccf)
        return array, VolumeGrid(array.shape, (ccf / 1000.0,) * 3, orientation or CCF_ARRAY_ORIENTATION)
    spacing = tuple(reversed(image.GetSpacing()))
    if min(spacing) >= 1.0:
        log.warning("%s: voxels of %s 'mm' are too large for a mouse template; reading them as µm", path.name, spacing)
        spacing = tuple(s / 1000.0 for s in spacing)
    ras = _LPS @ np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)  # columns: ITK index axes
    if orientation is None:
        orientation = _nearest_code(ras[:, ::-1], path)
    origin = _LPS @ np.asarray(image.GetOrigin(), dtype=float)
    return array, VolumeGrid(array.shape, spacing, orientation, tuple(origin))


def _nearest_code(directions: np.ndarray, path: Path) -> str:
    """The code of the axis-aligned frame nearest to direction columns (array order)."""
    letters = ("RL", "AP", "SI")
    code = ""
    for j in range(3):
        column = directions[:, j]
        axis = int(np.argmax(np.abs(column)))
        if abs(column[axis]) < 0.99:
            log.warning(
                "%s: array axis %d is oblique (%s); using its nearest anatomical axis", path.name, j, column.round(3)
            )
        code += letters[axis][0 if column[axis] > 0 else 1]
    try:
        return parse_orientation(code, name="header orientation")
    except ValueError:
        raise FormatError(path, f"header direction cosines {directions.round(3).tolist()} are not a rotation") from None


def write_transform(path: str | os.PathLike, registration: AtlasRegistration) -> Path:
    """Write the registration's affine transform as an ITK ``.tfm`` file, atomically.

    The transform maps atlas RAS points to brain RAS points in mm
    (:mod:`serialoct.atlas.register`); note that ITK tools read ``.tfm``
    files in their LPS frame.
    """
    import SimpleITK as sitk

    path = Path(path)
    with atomic_output(path) as tmp:
        staged = tmp.with_name(tmp.name + path.suffix)  # SimpleITK picks the format from the suffix
        sitk.WriteTransform(registration.transform, str(staged))
        staged.rename(tmp)
    return path


def read_transform(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.tfm`` written by :func:`write_transform`: ``(matrix, translation)``, ``p_brain = A p_atlas + b``.

    Raises
    ------
    InputError
        If the file does not exist.
    FormatError
        If it is not a 3D affine ITK transform.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "transform file does not exist")
    try:
        transform = sitk.ReadTransform(str(path))
        if transform.GetName() == "CompositeTransform":
            transform = sitk.CompositeTransform(transform).GetNthTransform(0)
        affine = sitk.AffineTransform(transform)
    except RuntimeError as err:
        raise FormatError(path, f"not a 3D affine ITK transform ({str(err).strip().splitlines()[-1]})") from None
    a = np.asarray(affine.GetMatrix(), dtype=float).reshape(3, 3)
    centre = np.asarray(affine.GetCenter(), dtype=float)
    return a, np.asarray(affine.GetTranslation(), dtype=float) + centre - a @ centre
