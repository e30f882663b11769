"""A Kubernetes API client from a kubeconfig, with an error a person can act on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ggctl.errors import GgctlError


def api_client(
    path: Path | None,
    context: str | None = None,
    *,
    retries: int = 0,
    error: type[GgctlError] = GgctlError,
    hint: str = "pass --kubeconfig FILE",
) -> Any:
    """An ApiClient for `path` (None: $KUBECONFIG, else ~/.kube/config); raises `error`."""
    from kubernetes import config

    try:
        api = config.new_client_from_config(
            config_file=str(path) if path else None, context=context, persist_config=False
        )
    except (config.ConfigException, OSError, TypeError) as exc:
        where = str(path) if path else os.environ.get("KUBECONFIG", "~/.kube/config")
        raise error(f"cannot use the kubeconfig {where}: {exc}", hint=hint) from None
    api.configuration.retries = retries
    return api
