"""Pins: people pin messages to come back to, mark them done, unpin them; a panel lists a channel's.

Each change is one store transaction (store/pins.py) published on the room topic after the commit
as ``{"kind": "pin", "action": "pinned"|"unpinned"|"updated", "message": ..., "pin": ...|None}``.
Pinning is idempotent and setting ``done`` to what it is changes nothing: neither publishes.
"""

from __future__ import annotations

from typing import Any

from backchannel.errors import InvalidInput
from backchannel.models import Person
from backchannel.room import Room, validate_channel
from backchannel.store import Store, channels
from backchannel.store import pins as sql
from backchannel.store.pins import PinChange


class Pins:
    def __init__(self, room: Room, store: Store) -> None:
        self.room = room
        self.store = store

    def _publish(self, change: PinChange) -> PinChange:
        if change.event is not None:
            self.room.publish(change.event)
        return change

    async def pin(self, message_id: int, by: Person) -> PinChange:
        change = await self.store.db.write(lambda c: sql.pin(c, message_id, by.name, by.id))
        return self._publish(change)

    async def unpin(self, message_id: int) -> PinChange:
        return self._publish(await self.store.db.write(lambda c: sql.unpin(c, message_id)))

    async def set_done(self, message_id: int, done: Any) -> PinChange:
        if not isinstance(done, bool):
            raise InvalidInput("done must be true or false")
        return self._publish(await self.store.db.write(lambda c: sql.set_done(c, message_id, done)))

    async def list(self, channel: Any) -> list[PinChange]:
        """A channel's pins, newest first (404 for a channel that does not exist)."""
        name = validate_channel(channel)
        return await self.store.db.read(lambda c: sql.for_channel(c, channels.get(c, name).id))
