"""Write a ModelMeta into an ONNX model's metadata_props and read it back.

The service reads the same key (`ggctl.meta`) through `ggctl.app.modelmeta`, so a model
written here needs no sidecar file to be served with the right labels and preprocessing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from ggctl.app.modelmeta import METADATA_KEY, ModelMeta, embedded_metadata


def set_metadata(model: onnx.ModelProto, meta: ModelMeta) -> onnx.ModelProto:
    """Store `meta` under `ggctl.meta` in `model` (in place, replacing an older entry)."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = meta.to_json()
    return model


def clean_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` without what only describes one load (where the metadata came from).

    `ModelMeta.from_mapping` keeps an `extra` key of the JSON as a nested `extra`; this
    flattens that so a read-modify-write cycle does not nest deeper each time.
    """
    flat: dict[str, Any] = {}
    for key, value in extra.items():
        if key == "extra" and isinstance(value, dict):
            flat.update(clean_extra(value))
        elif key != "metadata_source":
            flat[key] = value
    return flat


def get_metadata(model: onnx.ModelProto) -> ModelMeta | None:
    """The ModelMeta stored in `model`, or None when it carries no `ggctl.meta` entry."""
    props = {p.key: p.value for p in model.metadata_props}
    data = embedded_metadata(props)
    if data is None:
        return None
    meta = ModelMeta.from_mapping(data)
    return replace(meta, extra=clean_extra(meta.extra))


def write_metadata(path: Path, meta: ModelMeta) -> None:
    """Rewrite the ONNX file at `path` with `meta` embedded."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    set_metadata(model, meta)
    onnx.save(model, str(path))


def read_metadata(path: Path) -> ModelMeta | None:
    """The ModelMeta embedded in the ONNX file at `path`, or None if it has none."""
    model = onnx.load(str(Path(path)), load_external_data=False)
    return get_metadata(model)
