"""The demo file service, an example app: upload, list, process (streamed) and watch files.

``create_app`` is what ``make run`` serves (``python -m server --app examples.files:create_app``),
configured by ``FILES_DATA_DIR`` and ``FILES_MAX_UPLOAD_BYTES``; ``build_demo`` also hands tests the
store and the event fan-out behind it.
"""

from examples.files.app import Demo, build_demo, create_app

__all__ = ["Demo", "build_demo", "create_app"]
