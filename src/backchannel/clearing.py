"""``/clear``: a person removes every message of a channel's timeline for everyone, for good.

One store transaction (store/clearing.py) removes the messages and every copy of them; after the
commit the room topic gets the ``job`` updates it made and one ``channel_cleared`` event (every open
page empties that timeline), the uploads nothing uses any more leave the disk, and the deferred
scrub takes the removed words' bytes out of the search index and the WAL.
"""

from __future__ import annotations

from typing import Any

from backchannel.room import Room, validate_channel
from backchannel.store import Store
from backchannel.store import clearing as sql


class Clearing:
    def __init__(self, room: Room, store: Store) -> None:
        self.room = room
        self.store = store

    async def count(self, channel: Any) -> int:
        name = validate_channel(channel)
        return await self.store.db.read(lambda c: sql.count(c, name))

    async def clear(self, channel: Any) -> int:
        """Clear the channel's timeline; returns how many messages went."""
        name = validate_channel(channel)
        done = await self.store.db.write(lambda c: sql.clear(c, name), alone=True)
        self.store.scrubber.request()
        self.room.publish(*done.events)
        await self.room.remove_uploads(done.orphaned)
        return done.deleted
