"""maest's local web app (``maest serve``): tag a file, browse a collection. Needs the ``[app]`` extra.

``build_app(pipeline, index=None, head=None, ...)`` returns the Gradio page; ``serve(model, ...)``
loads and launches it on 127.0.0.1. Imports are lazy: ``maest.app.protocols`` works without gradio.
"""

from __future__ import annotations

_LAZY = {
    "build_app": "maest.app.ui",
    "serve": "maest.app.server",
    "launch": "maest.app.server",
    "LabelHead": "maest.app.protocols",
    "TrackIndex": "maest.app.protocols",
    "AppInputError": "maest.app.service",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maest.app' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
