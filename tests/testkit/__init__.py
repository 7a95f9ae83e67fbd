"""Helpers shared by the tests, one module per package under test.

``testkit`` is importable because pytest puts ``tests/`` on the import path
(``pythonpath`` in pyproject.toml); test modules write
``from testkit.camera import demo_edge``.
"""
