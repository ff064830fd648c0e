"""The messages on the broker, defined once: the task message (every work, retry and
dead-letter message) and the control message (a cooperative cancel for all workers)."""

from __future__ import annotations

import msgspec


class TaskMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    """The body of every task message: the id, the agent and the attempt it starts, the
    task's concurrency key and its due time (flow limits are judged before the claim)."""

    task_id: str
    agent: str
    attempt: int
    key: str | None = None
    due: float | None = None
    """When the task may start (Unix time) if that was later than the publish: a delivery
    that comes early goes back (or waits) before it takes a flow-limit slot."""


class CancelCommand(msgspec.Struct, frozen=True):
    """Broadcast on the control exchange: stop the running agent call of ``cancel``."""

    cancel: str


MalformedMessage = msgspec.DecodeError
"""A body that is not the message it should be (dropped, or dead-lettered for a task)."""

encode = msgspec.json.Encoder().encode
decode_task = msgspec.json.Decoder(TaskMessage).decode
decode_control = msgspec.json.Decoder(CancelCommand).decode
