"""The lab tier: `ggctl cluster` against three real Debian hosts on this machine."""
