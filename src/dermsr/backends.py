"""The backend plugin registry: ``dermsr.backends.available()``, ``get_backend(name)``,
``resolve_backend("auto")`` (which runtime ``"auto"`` picks here) ...

See :mod:`dermsr.enhance.registry` for the plugin interface.
"""

from .enhance.enhancer import AUTO_ORDER, resolve_backend
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
    "AUTO_ORDER",
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
    "resolve_backend",
    "unregister",
]
