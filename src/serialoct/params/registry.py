"""The two workflow registries: ordered, read-only maps of name -> Parameter.

Built once from the declaration tables in :mod:`serialoct.params.preproc` and
:mod:`serialoct.params.reconst_3d`, which fills in each parameter's group and
``implemented`` flag.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from serialoct.errors import ParameterError
from serialoct.params import preproc, reconst_3d
from serialoct.params.model import Parameter

__all__ = ["WORKFLOWS", "check_workflow", "groups", "registry", "steps"]

WORKFLOWS: tuple[str, ...] = ("preproc", "reconst_3d")
_TABLES: dict[str, ModuleType] = {"preproc": preproc, "reconst_3d": reconst_3d}


def check_workflow(workflow: str) -> str:
    """Return ``workflow`` if it names a workflow, else raise ParameterError."""
    if workflow not in _TABLES:
        raise ParameterError(f"unknown workflow {workflow!r}; expected one of {', '.join(WORKFLOWS)}")
    return workflow


@functools.cache
def registry(workflow: str) -> Mapping[str, Parameter]:
    """Return the parameters of ``workflow`` in table order.

    Parameters
    ----------
    workflow : {'preproc', 'reconst_3d'}

    Returns
    -------
    Mapping[str, Parameter]
        Read-only, ordered by group as in the reference guide.

    Raises
    ------
    ParameterError
        ``workflow`` is not one of :data:`WORKFLOWS`.
    """
    table = _TABLES[check_workflow(workflow)]
    params: dict[str, Parameter] = {}
    for title, declared in table.GROUPS:
        for p in declared:
            if p.name in params:
                raise ValueError(f"{workflow} parameter {p.name!r} is declared twice")
            params[p.name] = dataclasses.replace(p, group=title, implemented=p.name in table.IMPLEMENTED)
    unknown = sorted(set(table.IMPLEMENTED) - params.keys())
    if unknown:
        raise ValueError(f"{workflow}.IMPLEMENTED names undeclared parameters: {', '.join(unknown)}")
    return MappingProxyType(params)


def groups(workflow: str) -> tuple[str, ...]:
    """Return the group titles of ``workflow`` in table order."""
    return tuple(title for title, _ in _TABLES[check_workflow(workflow)].GROUPS)


def steps(workflow: str) -> tuple[str, ...]:
    """Return the step names of ``workflow`` in pipeline order."""
    return _TABLES[check_workflow(workflow)].STEPS
