"""Tests of ``retrainer quickstart`` (the rainfall demo, its workspace and its HTML report).

This folder is a package so that its ``conftest.py`` is imported as
``quickstart.conftest``: a plain ``conftest`` module would replace ``tests/conftest.py``
in ``sys.modules`` and break the ``from conftest import ...`` of other test folders.
"""
