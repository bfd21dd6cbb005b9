"""vid2model: turn an ordinary video (or a folder of photos) into accurate, usable 3D models."""

from vid2model._version import __version__
from vid2model.errors import UserError
from vid2model.workspace import Workspace

__all__ = ["UserError", "Workspace", "__version__"]
