"""Render a strategy's Kubernetes objects from the Jinja2 templates: strategy + image + namespace
→ a list of plain dicts (or one multi-document YAML string)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import jinja2
import yaml

from .strategy import (
    APP_NAME,
    APP_NAME_LABEL,
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    STRATEGY_LABEL,
    TMP_MOUNT,
    TMP_SIZE_LIMIT,
    Strategy,
    get_strategy,
)

#: Apply order: what others refer to first. Pruning deletes in the reverse.
KIND_ORDER = ("PodDisruptionBudget", "Service", "Deployment", "HorizontalPodAutoscaler")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ggctl.manifests", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - YAML, not HTML; values go through tojson
    )


def labels_for(strategy: Strategy) -> dict[str, str]:
    """The labels of every object of `strategy`: ours, which strategy, and the app's name."""
    return {
        APP_NAME_LABEL: APP_NAME,
        MANAGED_BY_LABEL: MANAGED_BY,
        STRATEGY_LABEL: strategy.name,
    }


def render(
    strategy: Strategy | str, image: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    """The objects of `strategy` for `image` in `namespace`, in apply order."""
    s = get_strategy(strategy) if isinstance(strategy, str) else strategy
    labels = labels_for(s)
    selector = {"app": s.app_label}
    context = {
        "s": s,
        "image": image or DEFAULT_IMAGE,
        "namespace": namespace or DEFAULT_NAMESPACE,
        "labels": labels,
        "selector": selector,
        "tmp_mount": TMP_MOUNT,
        "tmp_size": TMP_SIZE_LIMIT,
        # No strategy label on the pod template: switching k8s <-> lb, which share the
        # Deployment and its pods, must not make a new ReplicaSet (restart every pod).
        "pod_labels": {**selector, **{k: v for k, v in labels.items() if k != STRATEGY_LABEL}},
    }
    names = ["service.yaml.j2", "deployment.yaml.j2"]
    if s.autoscaling is not None:
        names.append("hpa.yaml.j2")
    if s.pdb_max_unavailable is not None:
        names.append("pdb.yaml.j2")
    objects: list[dict[str, Any]] = []
    for name in names:
        text = _env().get_template(name).render(**context)
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return sort_objects(objects)


def sort_objects(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(obj: dict[str, Any]) -> tuple[int, str]:
        kind = obj.get("kind", "")
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return rank, obj.get("metadata", {}).get("name", "")

    return sorted(objects, key=key)


def to_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """One multi-document YAML stream, keys in manifest order."""
    return yaml.safe_dump_all(
        list(objects), sort_keys=False, default_flow_style=False, explicit_start=True
    )


def to_json(objects: Iterable[dict[str, Any]]) -> str:
    """A v1 List of the objects, as `kubectl get -o json` prints several."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}, indent=2)
