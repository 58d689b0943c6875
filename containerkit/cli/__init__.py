"""The ``containerkit`` command line: docker's verbs over an in-process Engine or a containerkitd.

Entry point: :func:`containerkit.cli.main.main` (also ``python -m containerkit.cli``).
"""
