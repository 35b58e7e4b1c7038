"""The documented import path (see the README) of `intercept.doors.wsgi`, where the code
lives: everything it exports."""

from intercept.doors.wsgi import *  # noqa: F403
from intercept.doors.wsgi import __all__ as __all__
