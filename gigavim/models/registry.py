"""A name → constructor registry for backbones (timm style), so configs and the CLI name models.

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


def list_models(pattern: str = "*", include_aliases: bool = False) -> list[str]:
    """Registered names matching a shell-style ``pattern``, sorted."""
    _ensure_variants()
    names = list(_REGISTRY) + (list(_ALIASES) if include_aliases else [])
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))



# Model *bundles* by name or path (bundled defaults, checkpoint files) live in
# gigavim.models.catalog; ``--model NAME|PATH`` resolves through this re-export.
from gigavim.models.catalog import default_model_name, load_model  # noqa: E402

__all__ = ["create_model", "default_model_name", "list_models", "load_model", "register_model",
           "resolve_name"]
