"""Clients of the demo file service: ``clients.python`` (SDK + CLI) and ``clients/node`` (Node.js).

They depend only on the generated stubs of ``protos/``, never on ``server`` or ``cqrs``: they are
what a caller in another repository would write.
"""
