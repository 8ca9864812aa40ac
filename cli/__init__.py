"""The ``smile`` command line tool (import package ``smile_cli``; one module per sub-command).

Entry point: :func:`smile_cli.entry.main` (which loads :func:`smile_cli.main.main`).  ``python -m smile_cli`` works too.
"""
