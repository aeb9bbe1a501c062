"""Example applications served by ``python -m server --app``; ``examples.files`` is what ``make run`` serves.

Imports flow one way: examples → server → cqrs (nothing in ``server`` or ``cqrs`` imports these).
"""
