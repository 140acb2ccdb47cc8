"""The backend plugin registry: ``dermsr.backends.available()``, ``get_backend(name)`` ...

See :mod:`dermsr.enhance.registry` for the plugin interface.
"""

from .enhance.registry import (
    ENTRY_POINT_GROUP,
    Availability,
    Backend,
    BackendOptions,
    Capabilities,
    Session,
    SessionBase,
    available,
    backend_names,
    check_session,
    get_backend,
    register,
    unregister,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Availability",
    "Backend",
    "BackendOptions",
    "Capabilities",
    "Session",
    "SessionBase",
    "available",
    "backend_names",
    "check_session",
    "get_backend",
    "register",
    "unregister",
]
