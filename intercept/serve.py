"""The documented import path of `build_engine` (see the README), and of the rest of the
assembly the server re-exports; the server itself is `intercept.server.serve`."""

from intercept.server.serve import attach_ledger, build_engine, engine_for, start_ledger_thread

__all__ = ["attach_ledger", "build_engine", "engine_for", "start_ledger_thread"]
