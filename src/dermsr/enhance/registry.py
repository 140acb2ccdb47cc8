"""Backend plugin registry (entry-point group ``dermsr.backends``).

A backend is a class with a ``name``, an ``availability()`` that says why it cannot run
here, and ``load(model, options)`` returning a :class:`Session` whose ``run(x)`` maps float32
NCHW RGB [0, 1] to float32 NCHW. The built-in backends register through the same entry-point
group a third-party package uses::

    [project.entry-points."dermsr.backends"]
    tensorrt = "my_package.trt:TensorRTBackend"

Nothing here imports a runtime: entry points are resolved to classes, and a class imports its
runtime only inside ``availability()`` and ``load()``.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import (
    BackendError,
    BackendUnavailableError,
    DermsrError,
    InputError,
    UnknownNameError,
)
from ..machine import missing_modules
from ..models.spec import Model

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
]

ENTRY_POINT_GROUP = "dermsr.backends"


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, its runtime version, and if not, why and how to fix."""

    name: str
    available: bool
    version: str | None = None
    reason: str | None = None
    extra: str | None = None

    def __str__(self) -> str:
        if self.available:
            return f"{self.name}: available ({self.version})"
        return f"{self.name}: unavailable: {self.reason}"


@dataclass(frozen=True)
class BackendOptions:
    """Options every backend understands; ``extra`` carries backend-specific ones.

    ``precision``: ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` or ``"int8"``; a backend runs
    the ones in its ``Backend.precisions`` and refuses the others. ``calibration``: for
    ``"int8"``, a folder of images to calibrate on (default: the bundled sample images).
    """

    device: str = "cpu"
    threads: int | None = None
    half: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    calibration: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a session can do, stated as data (the Enhancer and ``dermsr bench`` read only this).

    ``thread_safe``: ``run`` may be called from several threads at once (else the Enhancer
    serialises calls). ``batch``: ``run`` accepts N > 1 images in one array (else the
    Enhancer sends them one at a time).
    """

    thread_safe: bool = False
    batch: bool = False


@runtime_checkable
class Session(Protocol):
    """A loaded model on one runtime.

    ``run(x)`` maps float32 (N, C, H, W) in [0, 1] to float32 (N, C, sH, sW) and must not keep
    references to ``x`` after it returns. ``raw_call()`` returns the runtime's own call on the
    already-loaded model, with none of dermsr's checks, tiling or conversions (``dermsr bench``
    times it against ``run`` to measure dermsr's overhead), or ``None`` if there is none.
    """

    backend: str
    capabilities: Capabilities

    def run(self, x: np.ndarray) -> np.ndarray: ...

    def raw_call(self) -> Any: ...


class SessionBase:
    """Optional base class for a plugin's session: no capabilities claimed, no raw call.

    Subclasses set ``backend``, override ``run``, and may set ``capabilities`` and override
    ``raw_call``.
    """

    backend: str = ""
    capabilities: Capabilities = Capabilities()

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw_call(self) -> Any:
        return None


def check_session(session: Any, backend: str) -> Session:
    """``session`` if it keeps the :class:`Session` contract, else a :class:`BackendError`
    naming the backend and what is missing (the same check for built-ins and plugins)."""
    missing = [a for a in ("run", "raw_call") if not callable(getattr(session, a, None))]
    caps = getattr(session, "capabilities", None)
    if not isinstance(caps, Capabilities):
        missing.append(f"capabilities (a dermsr.backends.Capabilities, got {type(caps).__name__})")
    if missing:
        raise BackendError(f"backend {backend!r} returned a session without {', '.join(missing)}; "
                           "see dermsr.backends.Session")
    return session


class Backend(ABC):
    """Base class of backends. Subclasses set ``name``, ``extra`` and ``runtime_module``."""

    name: ClassVar[str]
    #: pip extra that installs the runtime (``pip install 'dermsr[<extra>]'``); None if core
    extra: ClassVar[str | None] = None
    #: import name of the runtime package, used by the default availability check
    runtime_module: ClassVar[str] = ""
    #: distribution whose version is reported (defaults to ``runtime_module``)
    runtime_distribution: ClassVar[str | None] = None
    #: numeric precisions ``load`` accepts (``BackendOptions.precision``); the Enhancer refuses
    #: the others with an error naming these
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: runs only the architectures dermsr writes itself (``model.config.native``: NCNN files,
    #: ExecuTorch programs); :meth:`check_model` refuses the others
    native_only: ClassVar[bool] = False

    def availability(self) -> Availability:
        """Default check: the runtime package is installed (found without importing it, so
        ``dermsr info`` stays fast). A runtime that is installed but broken fails in ``load``
        with a :class:`~dermsr.errors.BackendUnavailableError`."""
        if missing_modules([self.runtime_module]):
            how = f"pip install 'dermsr[{self.extra}]'" if self.extra else "reinstall dermsr"
            return Availability(
                self.name, False, None, f"the {self.runtime_module!r} package is not installed; {how}", self.extra
            )
        return Availability(self.name, True, self.version(), None, self.extra)

    def version(self) -> str | None:
        dist = self.runtime_distribution or self.runtime_module
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    def require(self) -> None:
        """Raise :class:`BackendUnavailableError` (with the extra to install) if unavailable."""
        a = self.availability()
        if not a.available:
            raise BackendUnavailableError(f"backend {self.name!r} is unavailable: {a.reason}")

    def check_model(self, model: Model) -> None:
        """Raise :class:`~dermsr.errors.UnsupportedModelError` (naming the runtimes that run it)
        if this backend cannot run ``model``'s architecture; the Enhancer asks before loading."""
        if self.native_only:
            from ..models.foreign import check_native

            check_native(model, f"backend {self.name!r}")

    @abstractmethod
    def load(self, model: Model, options: BackendOptions) -> Session:
        """Build a session for ``model``."""


_lock = threading.Lock()
_classes: dict[str, type[Backend]] | None = None
_manual: dict[str, type[Backend]] = {}


def _discover() -> dict[str, type[Backend]]:
    global _classes
    with _lock:
        if _classes is None:
            found: dict[str, type[Backend]] = {}
            origin: dict[str, str] = {}
            for ep in md.entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in found and origin[ep.name] != ep.value:
                    raise DermsrError(
                        f"two packages register a dermsr backend named {ep.name!r}: "
                        f"{origin[ep.name]} and {ep.value}; uninstall one"
                    )
                try:
                    cls = ep.load()
                except Exception as exc:
                    cls = _broken_backend(ep.name, ep.value, exc)
                found[ep.name] = cls
                origin[ep.name] = ep.value
            _classes = found
        merged = dict(_classes)
        merged.update(_manual)
        return merged


def _broken_backend(name: str, value: str, exc: Exception) -> type[Backend]:
    class Broken(Backend):
        def availability(self) -> Availability:
            return Availability(name, False, None, f"plugin {value} failed to import: {exc}")

        def load(self, model: Model, options: BackendOptions) -> Session:
            raise BackendUnavailableError(f"backend {name!r}: plugin {value} failed to import: {exc}")

    Broken.name = name
    return Broken


def register(cls: type[Backend], *, name: str | None = None) -> type[Backend]:
    """Register a backend class at run time (tests, notebooks); the entry point is preferred."""
    key = name or cls.name
    if key in _discover():
        raise InputError(f"a backend named {key!r} is already registered; pick another name or unregister it first")
    _manual[key] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a backend registered with :func:`register`."""
    _manual.pop(name, None)


def backend_names() -> list[str]:
    """Names of every registered backend, available or not."""
    return sorted(_discover())


def get_backend(name: str) -> Backend:
    """An instance of the backend called ``name``; unknown names list the known ones."""
    classes = _discover()
    if name not in classes:
        close = difflib.get_close_matches(name, list(classes), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(
            f"unknown backend {name!r}; known backends: {', '.join(sorted(classes))}.{hint}"
        )
    return classes[name]()


def available() -> list[Availability]:
    """Availability of every registered backend (imports each runtime to check)."""
    return [get_backend(n).availability() for n in backend_names()]
