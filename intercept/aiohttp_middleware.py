"""The documented import path (see the README) of `intercept.doors.aiohttp_middleware`,
where the code lives: everything it exports."""

from intercept.doors.aiohttp_middleware import *  # noqa: F403
from intercept.doors.aiohttp_middleware import __all__ as __all__
