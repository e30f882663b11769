"""Chameleon/OpenStack provisioning: desired topology → plan → apply (a later release)."""
