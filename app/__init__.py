"""The GourmetGram classifier service: a Flask app around an ONNX Runtime model.

It knows nothing of the rest of ggctl, so the container ships only this folder. Settings come
from create_app()'s arguments or the same GGCTL_SERVE__* variables that ggctl's config uses.

Importing this package stays cheap: gunicorn's master (and the ggctl CLI) import it for the
server options, and only the workers need Flask, NumPy, Pillow and ONNX Runtime (~40 MiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the service (see service.create_app); raises ModelLoadError on a bad model."""
    from .service import create_app as _create_app

    return _create_app(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "ModelLoadError":
        from .inference import ModelLoadError

        return ModelLoadError
    raise AttributeError(name)


__all__ = ["ModelLoadError", "create_app"]
