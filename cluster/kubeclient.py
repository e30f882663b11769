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
    import yaml
    from kubernetes import config

    where = str(path) if path else os.environ.get("KUBECONFIG", "~/.kube/config")
    problem = _not_a_kubeconfig(Path(path)) if path else None
    if problem:
        raise error(f"cannot use the kubeconfig {where}: {problem}", hint=hint)
    try:
        api = config.new_client_from_config(
            config_file=str(path) if path else None, context=context, persist_config=False
        )
    except (config.ConfigException, OSError, TypeError) as exc:
        raise error(f"cannot use the kubeconfig {where}: {exc}", hint=hint) from None
    except yaml.YAMLError as exc:  # one of $KUBECONFIG's files is not YAML
        raise error(f"cannot use the kubeconfig {where}: it is not YAML: {exc}", hint=hint) from exc
    api.configuration.retries = retries
    return api


def _not_a_kubeconfig(path: Path) -> str | None:
    """Why the file cannot be a kubeconfig, when the client library would only trip on it
    (a list or a line of text makes it fail with "list indices must be integers")."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError:
        return None  # missing or unreadable: the library's own message names it
    except yaml.YAMLError as exc:
        return f"it is not YAML: {exc}"
    if not isinstance(data, dict):
        return "it is not a kubeconfig (a YAML mapping with clusters, users and contexts)"
    return None
