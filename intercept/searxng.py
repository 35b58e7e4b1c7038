"""The documented import path (see the README) of `intercept.doors.searxng`, where the code
lives: everything it exports."""

from intercept.doors.searxng import *  # noqa: F403
from intercept.doors.searxng import __all__ as __all__
