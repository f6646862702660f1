"""Optional extras (``pip install 'meta-spliceai[train]'`` etc.): what a command needs, checked before it
does any work, so a core-only install fails in one line naming the extra instead of a
``ModuleNotFoundError`` after minutes of work."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from .errors import InputError

#: the extra that installs each optional module (by import name) and the name pip knows it by
EXTRA_OF: dict[str, tuple[str, str]] = {
    "xgboost": ("train", "xgboost"),
    "lightgbm": ("train", "lightgbm"),
    "sklearn": ("train", "scikit-learn"),
    "ray": ("ray", "ray"),
    "torch": ("torch", "torch"),
}


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level import name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken parent package
        return False


def require(modules: Iterable[str], what: str) -> None:
    """Raise one :class:`InputError` naming the ``pip install`` line when any of ``modules`` is missing.

    ``what`` says what needs them (e.g. ``"train --model xgboost"``)."""
    missing = [m for m in dict.fromkeys(modules) if not installed(m)]
    if not missing:
        return
    extras = sorted({EXTRA_OF.get(m, ("all", m))[0] for m in missing})
    names = ", ".join(EXTRA_OF.get(m, ("", m))[1] for m in missing)
    raise InputError(f"{what} needs {names}, which {'is' if len(missing) == 1 else 'are'} not installed: "
                     f"pip install 'meta-spliceai[{','.join(extras)}]'")


__all__ = ["EXTRA_OF", "installed", "require"]
