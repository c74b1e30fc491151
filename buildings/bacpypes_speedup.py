"""A measured speed-up for bacpypes3 on Python 3.11: a cached ``inspect.getattr_static`` for its hot paths.

Why: bacpypes3 (0.0.1xx) asks ``inspect.getattr_static(self, attr)`` whether an attribute is a ``property``
every time it builds a ``Sequence`` (once per element left unset) and every time a local BACnet object's
property is read or written. On Python 3.11 that call walks the MRO with ``_shadowed_dict`` each time (3.12 made
it faster). Profiling the collector bench (10 devices x 100 analog inputs), it was a quarter of the collector's
CPU decoding ReadPropertyMultiple answers and 40 % of the simulator's CPU building them.

How: the *class* part of the lookup depends only on ``(type(obj), attr)``, so it is looked up once and cached;
the rest follows ``inspect.getattr_static``'s own order for an ordinary instance: a data descriptor on the class
(a ``property``) wins, then the instance ``__dict__``, then the class attribute, then the default or
``AttributeError``. Anything unusual (a class or module passed as ``obj``, an instance without a ``__dict__``)
goes to the real ``inspect.getattr_static``. Only the two bacpypes3 modules that call it in hot paths see the
cached version (their module-level ``inspect`` name is replaced by a proxy); nothing else changes.

``install()`` is idempotent; the collectors' BACnet driver and the BACnet simulator call it on import. The
equivalence is tested against ``inspect.getattr_static`` on bacpypes3's own classes
(tests/collectors/test_bacnet.py).
"""

from __future__ import annotations

import inspect
import types
from typing import Any

_MISSING = object()
_NO_DICT = object()


def _is_data_descriptor(value: Any) -> bool:
    kind = type(value)
    return hasattr(kind, "__set__") or hasattr(kind, "__delete__")


class CachedGetattrStatic:
    """``inspect.getattr_static`` with the class-level lookup cached per (class, attribute)."""

    def __init__(self) -> None:
        self._class_attr: dict[tuple[type, str], Any] = {}

    def __call__(self, obj: Any, attr: str, *default: Any) -> Any:
        kind = type(obj)
        if isinstance(obj, type | types.ModuleType):
            return inspect.getattr_static(obj, attr, *default)
        key = (kind, attr)
        try:
            klass = self._class_attr[key]
        except KeyError:
            klass = inspect.getattr_static(kind, attr, _MISSING)
            if inspect.getattr_static(type(kind), attr, _MISSING) is not _MISSING:
                klass = _NO_DICT  # defined on the metaclass too: let inspect sort out the precedence
            self._class_attr[key] = klass
        if klass is _NO_DICT:
            return inspect.getattr_static(obj, attr, *default)
        if klass is not _MISSING and _is_data_descriptor(klass):
            return klass
        try:
            instance_dict = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            return inspect.getattr_static(obj, attr, *default)
        if not isinstance(instance_dict, dict):
            return inspect.getattr_static(obj, attr, *default)
        if attr in instance_dict:
            return instance_dict[attr]
        if klass is not _MISSING:
            return klass
        if default:
            return default[0]
        raise AttributeError(attr)


class _InspectProxy(types.SimpleNamespace):
    """Stands in for the ``inspect`` module inside a bacpypes3 module: ``getattr_static`` cached, the rest real."""

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


_cached = CachedGetattrStatic()
_installed = False


def install() -> None:
    """Give bacpypes3's constructeddata and local.object modules the cached ``getattr_static`` (idempotent)."""
    global _installed
    if _installed:
        return
    from bacpypes3 import constructeddata
    from bacpypes3.local import object as local_object

    proxy = _InspectProxy(getattr_static=_cached)
    for module in (constructeddata, local_object):
        if getattr(module, "inspect", None) is inspect:
            module.inspect = proxy  # type: ignore[attr-defined]
    _installed = True
