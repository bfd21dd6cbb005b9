"""Errors that reach the user as one clear line."""


class UserError(Exception):
    """A problem the user can fix (bad input, impossible capture, missing dependency).

    The CLI prints ``str(err)`` as a single line and exits non-zero, without a traceback.
    """

    exit_code = 2


class MissingDependency(UserError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, feature: str, extra: str | None = None):
        hint = f"pip install 'vid2model[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the optional package '{package}': {hint}")


def require(module: str, feature: str, package: str | None = None, extra: str | None = None):
    """Import ``module`` or raise :class:`MissingDependency` naming what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(package or module, feature, extra) from exc
