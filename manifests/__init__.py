"""Kubernetes objects per deployment strategy, as Jinja2 templates (a later release)."""
