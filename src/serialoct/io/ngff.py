"""A small typed model of OME-NGFF multiscales metadata (0.5, reads 0.4).

Only what serialoct writes and reads: axes, scale/translation transforms,
datasets and one multiscale. The model knows nothing about pixels or stores;
:mod:`serialoct.io.omezarr` writes the pixels and puts :func:`ngff_attributes`
into the group's ``zarr.json``. Parsing errors raise :class:`MetadataError`,
which the reader turns into a :class:`serialoct.errors.FormatError` naming the
store.

References
----------
OME-NGFF 0.5 specification, https://ngff.openmicroscopy.org/0.5/ ;
0.4: https://ngff.openmicroscopy.org/0.4/ (doi:10.1038/s41592-021-01326-w).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NGFF_VERSION",
    "Axis",
    "Dataset",
    "MetadataError",
    "Multiscale",
    "Transform",
    "ngff_attributes",
    "parse_multiscales",
    "unit_to_mm",
]

NGFF_VERSION = "0.5"

# Millimetres per unit. The long names are the UDUNITS-2 names the spec asks
# for; the short ones appear in files written by older tools and are accepted.
_MM_PER_UNIT: dict[str, float] = {
    "kilometer": 1e6,
    "meter": 1e3,
    "decimeter": 1e2,
    "centimeter": 10.0,
    "millimeter": 1.0,
    "micrometer": 1e-3,
    "nanometer": 1e-6,
    "angstrom": 1e-7,
    "picometer": 1e-9,
    "mm": 1.0,
    "um": 1e-3,
    "µm": 1e-3,  # micro sign U+00B5
    "μm": 1e-3,  # greek mu U+03BC
    "micron": 1e-3,
    "nm": 1e-6,
}


class MetadataError(ValueError):
    """Multiscales metadata that does not follow OME-NGFF 0.4 / 0.5."""


def unit_to_mm(unit: str | None) -> float:
    """Millimetres per ``unit`` (``"micrometer"`` -> 0.001).

    Raises
    ------
    MetadataError
        If the unit is missing or not a length unit.
    """
    if unit is None:
        raise MetadataError("space axis has no unit; cannot express its scale in mm")
    try:
        return _MM_PER_UNIT[unit]
    except KeyError:
        known = ", ".join(sorted(k for k in _MM_PER_UNIT if len(k) > 2))
        raise MetadataError(f"unknown length unit {unit!r}; expected one of {known}") from None


@dataclass(frozen=True)
class Axis:
    """One named axis; ``orientation`` is an anatomical direction such as
    ``"left-to-right"`` (stored as ``{"type": "anatomical", "value": ...}``
    as proposed for NGFF 0.6; readers of 0.5 ignore the extra key)."""

    name: str
    type: str | None = "space"
    unit: str | None = None
    orientation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.type is not None:
            out["type"] = self.type
        if self.unit is not None:
            out["unit"] = self.unit
        if self.orientation is not None:
            out["orientation"] = {"type": "anatomical", "value": self.orientation}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Axis:
        if isinstance(data, str):  # NGFF 0.3 listed bare names
            return cls(name=data, type="space" if data in ("x", "y", "z") else None)
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise MetadataError(f"axis {data!r} has no string 'name'")
        orientation = data.get("orientation")
        if isinstance(orientation, Mapping):
            orientation = orientation.get("value")
        return cls(
            name=data["name"], type=data.get("type"), unit=data.get("unit"), orientation=orientation
        )


@dataclass(frozen=True)
class Transform:
    """A scale, optionally followed by a translation (the only NGFF 0.4/0.5
    transforms a dataset may carry). Physical = index * scale + translation."""

    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.translation is not None and len(self.translation) != len(self.scale):
            raise MetadataError(
                f"scale {list(self.scale)} and translation {list(self.translation)} differ in length"
            )
        if not all(math.isfinite(s) and s > 0 for s in self.scale):
            raise MetadataError(f"scale {list(self.scale)} must be finite and > 0")

    @property
    def ndim(self) -> int:
        return len(self.scale)

    def then(self, outer: Transform | None) -> Transform:
        """This transform followed by ``outer`` (a multiscale-level transform)."""
        if outer is None:
            return self
        inner_t = self.translation or (0.0,) * self.ndim
        outer_t = outer.translation or (0.0,) * self.ndim
        return Transform(
            scale=tuple(s * o for s, o in zip(self.scale, outer.scale, strict=True)),
            translation=tuple(t * o + u for t, o, u in zip(inner_t, outer.scale, outer_t, strict=True)),
        )

    def to_list(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"type": "scale", "scale": [float(s) for s in self.scale]}]
        if self.translation is not None:
            out.append({"type": "translation", "translation": [float(t) for t in self.translation]})
        return out

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]], ndim: int) -> Transform:
        scale: tuple[float, ...] = (1.0,) * ndim
        translation = None
        for item in items:
            kind = item.get("type") if isinstance(item, Mapping) else None
            if kind == "scale" and "scale" in item:
                scale = tuple(float(v) for v in item["scale"])
            elif kind == "translation" and "translation" in item:
                translation = tuple(float(v) for v in item["translation"])
            elif kind != "identity":
                raise MetadataError(
                    f"unsupported coordinate transformation {item!r}; expected an inline "
                    "'scale' and optionally an inline 'translation'"
                )
        if len(scale) != ndim:
            raise MetadataError(f"scale {list(scale)} has {len(scale)} values for {ndim} axes")
        return cls(scale=scale, translation=translation)


@dataclass(frozen=True)
class Dataset:
    """One resolution level: the array path relative to the group and its transform."""

    path: str
    transform: Transform

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "coordinateTransformations": self.transform.to_list()}


@dataclass(frozen=True)
class Multiscale:
    """One entry of ``multiscales``: axes, levels (finest first), optional
    global transform, and the downsampling ``type`` / ``metadata``."""

    axes: tuple[Axis, ...]
    datasets: tuple[Dataset, ...]
    transform: Transform | None = None
    name: str | None = None
    type: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise MetadataError("multiscale lists no datasets")
        names = [a.name for a in self.axes]
        if len(set(names)) != len(names):
            raise MetadataError(f"axis names {names} are not unique")
        for ds in self.datasets:
            if ds.transform.ndim != len(self.axes):
                raise MetadataError(
                    f"dataset {ds.path!r} has a {ds.transform.ndim}-D transform for {len(names)} axes"
                )

    def level_transform(self, level: int) -> Transform:
        """Index-to-physical transform of ``level``, global transform included."""
        return self.datasets[level].transform.then(self.transform)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "axes": [a.to_dict() for a in self.axes],
            "datasets": [d.to_dict() for d in self.datasets],
        }
        if self.transform is not None:
            out["coordinateTransformations"] = self.transform.to_list()
        for key, value in (("name", self.name), ("type", self.type), ("metadata", self.metadata)):
            if value is not None:
                out[key] = dict(value) if key == "metadata" else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Multiscale:
        if not isinstance(data, Mapping):
            raise MetadataError(f"multiscale entry {data!r} is not an object")
        if "axes" not in data:
            raise MetadataError("multiscale has no 'axes' (NGFF < 0.4 is not supported)")
        axes = tuple(Axis.from_dict(a) for a in data["axes"])
        datasets = []
        for ds in data.get("datasets") or ():
            if not isinstance(ds, Mapping) or not isinstance(ds.get("path"), str):
                raise MetadataError(f"dataset {ds!r} has no string 'path'")
            transform = Transform.from_list(ds.get("coordinateTransformations", ()), len(axes))
            datasets.append(Dataset(path=ds["path"], transform=transform))
        top = data.get("coordinateTransformations")
        return cls(
            axes=axes,
            datasets=tuple(datasets),
            transform=None if top is None else Transform.from_list(top, len(axes)),
            name=data.get("name"),
            type=data.get("type"),
            metadata=data.get("metadata"),
        )


def ngff_attributes(multiscale: Multiscale) -> dict[str, Any]:
    """The NGFF 0.5 group attributes: ``{"ome": {"version", "multiscales"}}``."""
    return {"ome": {"version": NGFF_VERSION, "multiscales": [multiscale.to_dict()]}}


def parse_multiscales(attributes: Mapping[str, Any]) -> tuple[str, list[Multiscale]]:
    """Read the multiscales of a group's attributes, NGFF 0.5 or 0.4 style.

    Parameters
    ----------
    attributes : mapping
        Group attributes: ``zarr.json`` ``attributes`` (0.5, under ``"ome"``)
        or ``.zattrs`` (0.4, at the top level).

    Returns
    -------
    version : str
        The NGFF version declared (``"0.4"`` when a 0.4 file omits it).
    multiscales : list of Multiscale
        At least one.

    Raises
    ------
    MetadataError
        If there is no ``multiscales`` list or an entry is malformed.
    """
    ome = attributes.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:
        raw, version = ome["multiscales"], str(ome.get("version", NGFF_VERSION))
    elif "multiscales" in attributes:
        raw = attributes["multiscales"]
        first = raw[0] if isinstance(raw, list) and raw and isinstance(raw[0], Mapping) else {}
        version = str(first.get("version", "0.4"))
    else:
        raise MetadataError(
            "group attributes have no 'multiscales' (neither 'ome.multiscales' of NGFF 0.5 "
            "nor top-level 'multiscales' of NGFF 0.4): not an OME-Zarr image"
        )
    if not isinstance(raw, list) or not raw:
        raise MetadataError(f"'multiscales' must be a non-empty list, found {raw!r}")
    return version, [Multiscale.from_dict(entry) for entry in raw]
