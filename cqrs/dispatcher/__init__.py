"""python-cqrs's dispatchers: run one handler (or one event's handlers) without a mediator around it.

Application code normally uses the mediators; these exist for code written against python-cqrs.
"""

from cqrs.dispatcher.event import EventDispatcher
from cqrs.dispatcher.models import RequestDispatchResult
from cqrs.dispatcher.request import RequestDispatcher
from cqrs.dispatcher.streaming import StreamingRequestDispatcher

__all__ = ["EventDispatcher", "RequestDispatchResult", "RequestDispatcher", "StreamingRequestDispatcher"]
