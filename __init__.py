"""ggctl: the GourmetGram deployment toolkit."""

__version__ = "0.1.0"

import os as _os

# Before any ggctl module imports onnxruntime (see app/inference.py for why).
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
