"""serialoct: reconstruct serial-section OCT acquisitions into OME-Zarr volumes.

Importing the package is cheap on purpose: a workflow starts one ``serialoct``
process per step and slice, so heavy libraries are imported inside the
functions that use them.
"""

from serialoct.errors import FormatError, InputError, OutputError, ParameterError, SerialOctError

__version__ = "0.1.0"

__all__ = ["FormatError", "InputError", "OutputError", "ParameterError", "SerialOctError", "__version__"]
