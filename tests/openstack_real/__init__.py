"""The real OpenStack tier (tox -e openstack): a package, so that its conftest is not
imported as the top-level `conftest` that tests/conftest.py already is."""
