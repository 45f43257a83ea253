"""Backbone *architectures* by name (timm style: ``register_model`` / ``create_model``).

Not to be confused with :mod:`gigavim.models.catalog`, the named, trained model *bundles*
(``tissue``, ``nuclei-he``, …) that ``--model NAME|PATH`` resolves.

Variants register themselves with :func:`register_model`; other names (e.g. the long names the
official hustvl/Vim code registered) map onto them through ``aliases``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

from torch import nn

from gigavim.errors import ModelError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_ALIASES: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, aliases: Iterable[str] = ()):
    """Decorator: register ``fn`` under its ``__name__`` (and ``aliases``)."""

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if f.__name__ in _REGISTRY or f.__name__ in _ALIASES:
            raise ValueError(f"model {f.__name__!r} registered twice")
        _REGISTRY[f.__name__] = f
        for alias in aliases:
            _ALIASES[alias] = f.__name__
        return f

    return deco(fn) if fn is not None else deco


def _ensure_variants() -> None:
    import gigavim.models.variants  # noqa: F401  (registers on import)


def resolve_name(name: str) -> str:
    """The canonical registered name for ``name`` or one of its aliases."""
    _ensure_variants()
    canonical = _ALIASES.get(name, name)
    if canonical not in _REGISTRY:
        close = [n for n in _REGISTRY if name.split("_")[:2] == n.split("_")[:2]] or sorted(_REGISTRY)
        raise ModelError(f"unknown model {name!r}; known: {', '.join(close)}")
    return canonical


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` override the variant's defaults."""
    return _REGISTRY[resolve_name(name)](**kwargs)


def list_architectures(pattern: str = "*", include_aliases: bool = False) -> list[str]:
    """Registered names matching a shell-style ``pattern``, sorted."""
    _ensure_variants()
    names = list(_REGISTRY) + (list(_ALIASES) if include_aliases else [])
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


__all__ = ["create_model", "list_architectures", "register_model", "resolve_name"]
