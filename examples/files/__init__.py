"""The demo service that ``make run`` serves: upload, list, process (streamed) and watch files.

``create_app`` is what ``python -m server`` loads by default; ``build_demo`` also hands tests the
store and the event fan-out behind it.
"""

from examples.files.app import Demo, build_demo, create_app

__all__ = ["Demo", "build_demo", "create_app"]
