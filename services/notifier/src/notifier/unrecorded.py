"""Emails the SMTP server accepted whose notification rows are not committed yet.

If the transaction that records them fails (the database refuses the commit, a statement
times out), the batch is tried again, and must not send those emails a second time. This
process remembers them until their rows commit: only its death between the SMTP server's
acceptance and the commit can still send one twice, the one at-least-once edge Dozen accepts.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

from notifier.repository import Notification

# Far above what is ever in flight (the prefetch, a few hundred); evicting the oldest only
# ever costs a duplicate email, never a lost one.
CAPACITY = 10_000


class Unrecorded:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._sent: OrderedDict[UUID, Notification] = OrderedDict()

    def sent(self, notification: Notification) -> None:
        self._sent[notification.order_created_event_id] = notification
        while len(self._sent) > self._capacity:
            self._sent.popitem(last=False)

    def get(self, event_id: UUID) -> Notification | None:
        return self._sent.get(event_id)

    def recorded(self, event_ids: list[UUID]) -> None:
        for event_id in event_ids:
            self._sent.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._sent)
