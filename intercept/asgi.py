"""The documented import path (see the README) of `intercept.doors.asgi`, where the code
lives: everything it exports."""

from intercept.doors.asgi import *  # noqa: F403
from intercept.doors.asgi import __all__ as __all__
