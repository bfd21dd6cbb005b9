"""vid2model: turn an ordinary video (or a folder of photos) into accurate, usable 3D models."""

__version__ = "0.1.0"

from vid2model.errors import UserError  # noqa: E402
from vid2model.workspace import Workspace  # noqa: E402

__all__ = ["UserError", "Workspace", "__version__"]
