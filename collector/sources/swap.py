"""Swapping sources on reload in two steps: bind everything the new configuration needs while
the running sources keep serving (undone on any failure, so a failed reload changes nothing),
then commit: removed sources drain and stop, changed stream sources take over their
predecessors' sockets and connections, the rest stop and start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from collector.config import VigilConfig
from collector.routing import TenantRouter
from collector.sources.base import Source

SourceBuilder = Callable[[VigilConfig, str, Any], Source]
RouterBuilder = Callable[[VigilConfig, Any], TenantRouter]


def same_address(new: Any, old: Any) -> bool:
    address = getattr(new, "address", None)
    return address is not None and address == getattr(old, "address", None)


class SourceSwap:
    """One reload's change of `sources` (the daemon's running sources, changed in place)."""

    def __init__(self, sources: dict[str, Source], old: VigilConfig, new: VigilConfig,
                 build: SourceBuilder, router: RouterBuilder) -> None:
        self.sources = sources
        self.old = old
        self.new = new
        self.build = build
        self.router = router
        self.bound: dict[str, Source] = {}  # new instances of new and changed sources

    async def bind(self) -> None:
        """Bind what the new sources need; on failure undo it and raise."""
        old = self.old
        try:
            for source_id, source_config in self.new.sources.items():
                previous = self.sources.get(source_id)
                if previous is not None and source_config == old.sources.get(source_id):
                    continue
                source = self.build(self.new, source_id, source_config)
                if previous is not None and source.can_take_over(previous):
                    await source.prepare_take_over(previous)
                elif previous is None or not same_address(source_config,
                                                          old.sources.get(source_id)):
                    await source.start()
                # else the same address without take-over: started at commit
                self.bound[source_id] = source
        except BaseException:
            await self.unbind()
            raise

    async def unbind(self) -> None:
        """Close what `bind` opened (another part of the reload failed)."""
        for source_id, source in self.bound.items():
            previous = self.sources.get(source_id)
            if previous is not None and source.can_take_over(previous):
                source.abort_take_over()
            elif source.running():
                await source.stop()
        self.bound = {}

    async def commit(self) -> None:
        new = self.new
        removed = [sid for sid in self.sources if sid not in new.sources]
        await asyncio.gather(*(self.sources.pop(sid).stop() for sid in removed))
        for source_id, source in self.bound.items():
            previous = self.sources.get(source_id)
            if previous is None:
                self.sources[source_id] = source
            elif source.can_take_over(previous):
                source.take_over(previous)
                self.sources[source_id] = source
            elif source.running():  # bound on its new address already
                self.sources[source_id] = source
                await previous.stop()
            else:  # the same address: the old instance must let go of it first
                await previous.stop()
                try:
                    await source.start()
                except BaseException:
                    # Serve on with the old settings; the reload reports the failure.
                    restored = self.build(self.old, source_id, self.old.sources[source_id])
                    await restored.start()
                    self.sources[source_id] = restored
                    raise
                self.sources[source_id] = source
        for source_id, source_config in new.sources.items():
            if source_id not in self.bound:
                self.sources[source_id].context.router = self.router(new, source_config)
