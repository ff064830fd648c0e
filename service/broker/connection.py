"""Opening the AMQP connection, with one clear error when RabbitMQ cannot be used."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import (
    ConnectionClosed,
    ConnectionNotAllowed,
    InvalidFrameError,
    ProbableAuthenticationError,
)
from pamqp.common import FieldTable
from yarl import URL

from service.errors import DependencyLoginRefused, DependencyResourceMissing, DependencyUnavailable
from service.reachability import not_answering, redact, unreachable_reason
from service.settings import BrokerSettings

RABBITMQ_HINT = "Start it with: rabbitmq-server -detached && rabbitmqctl await_startup"
AMQP_VARIABLE = "ORCH_AMQP_URL"
AMQP_PORTS = {"amqp": 5672, "amqps": 5671}


NODE_LIST_RECONNECT_S = 1.0
"""With several nodes a reconnection goes to the next one at once (one of them is up)."""


class NodeListConnection(aio_pika.RobustConnection):
    """A robust connection to one of several nodes of a cluster: every reconnection attempt
    goes to the next node of the list, so a client on a node that is lost moves to another
    (aio-pika's own reconnects to the node it lost). Topology and consumers are restored on
    the new node as on the old one."""

    def __init__(self, url: URL, *, nodes: list[URL], **kwargs: Any) -> None:
        self._nodes, self._transport_resets = nodes, 0
        super().__init__(url, **kwargs)

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        """Each attempt begins by clearing the transport: from the third clearing on (after
        ``__init__`` and the first attempt), the attempt goes to the next node."""
        self._transport = value
        if value is None:
            self._transport_resets += 1
            if self._transport_resets > 2:
                self.url = self._nodes[(self._transport_resets - 2) % len(self._nodes)]


async def connect(broker: BrokerSettings, name: str) -> AbstractRobustConnection:
    """A robust connection (reconnects and restores topology and consumers by itself); with
    several node URLs (``ORCH_AMQP_URL`` comma-separated) the first that answers, moving to
    the next on every reconnection."""
    urls = broker.urls
    properties: FieldTable = {"connection_name": name}
    if len(urls) == 1:
        try:
            return await aio_pika.connect_robust(urls[0], client_properties=properties,
                                                 timeout=10)
        except Exception as exc:
            raise await broker_error(urls[0], exc) from exc
    failure: Exception | None = None
    for start in range(len(urls)):
        nodes = [URL(u) for u in urls[start:] + urls[:start]]
        try:
            return await aio_pika.connect_robust(
                nodes[0], client_properties=properties, timeout=10,
                reconnect_interval=NODE_LIST_RECONNECT_S,
                connection_class=functools.partial(NodeListConnection, nodes=nodes))
        except Exception as exc:
            failure = failure or exc
    assert failure is not None
    raise await broker_error(urls[0], failure) from failure


def _refused_vhost(exc: BaseException) -> bool:
    """RabbitMQ closed the connection on ``Connection.Open``: the vhost does not exist or the
    user may not use it (NOT_ALLOWED). aiormq keeps the reason only when it expected a Close."""
    if isinstance(exc, ConnectionNotAllowed) or "NOT_ALLOWED" in str(exc.args):
        return True
    if isinstance(exc, ConnectionClosed) and exc.args and exc.args[0] == 530:
        return True
    text = str(exc)
    return isinstance(exc, InvalidFrameError) and "OpenOk" in text and "Connection.Close" in text


async def broker_error(url: str, exc: BaseException) -> DependencyUnavailable:
    """The one error to raise for ``exc``, a failed connection to the broker ``url`` names."""
    shown, parts = redact(url), urlsplit(url)
    if isinstance(exc, ProbableAuthenticationError) or "ACCESS_REFUSED" in str(exc.args):
        words = str(exc.args[0]) if exc.args else type(exc).__name__
        return DependencyLoginRefused("RabbitMQ", shown, words, AMQP_VARIABLE, exc)
    if _refused_vhost(exc):
        vhost = unquote(parts.path[1:]) or "/"
        user = unquote(parts.username or "guest")
        return DependencyResourceMissing(
            "RabbitMQ", shown, "vhost", vhost,
            f"create it (rabbitmqctl add_vhost {vhost}) and let {user} use it (rabbitmqctl"
            f" set_permissions -p {vhost} {user} '.*' '.*' '.*'), or fix {AMQP_VARIABLE}",
            note=f" open to {user}", cause=exc)
    reason = unreachable_reason(exc)
    if reason is not None:
        default_port = AMQP_PORTS.get(parts.scheme, AMQP_PORTS["amqp"])
        try:
            port = parts.port or default_port
        except ValueError:
            port = default_port
        return await not_answering("RabbitMQ", url, reason, host=parts.hostname, port=port,
                                   default_port=default_port, variable=AMQP_VARIABLE,
                                   start_hint=RABBITMQ_HINT, cause=exc)
    return DependencyUnavailable("RabbitMQ", shown,
                                 f"check {AMQP_VARIABLE} and the broker's log", exc)
