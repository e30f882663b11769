"""Ansible inventory and ssh_config written from provisioning state (a later release)."""
