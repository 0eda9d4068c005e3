"""`type: pubsub`: a Google Cloud Pub/Sub subscription through the client library's streaming
pull, with flow control (`max_messages`, `max_bytes`): messages held and not yet acknowledged
count against it, so while the journal is over its bound the library stops pulling. The library
extends the ack deadline of every held message (up to `max_lease_seconds`); messages are
acknowledged only after `SourceContext.deliver`, nacked when journaling failed or the source
stops (the service redelivers them at once instead of after the deadline).

The library calls back on its own threads; messages cross to the event loop through an
asyncio queue and are journaled in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import UTC, datetime
from typing import Any

from collector.sources.base import Source, SourceContext
from collector.sources.gcp.config import PubSubSourceConfig
from collector.sources.gcp.decoding import event_from_data
from collector.sources.pull import ORIGIN, Backoff, Sleep, wait_for_capacity
from core.events import Event

log = logging.getLogger(__name__)

_STOP_GRACE_SECONDS = 10.0
_NACK_AFTER_CLOSE_SECONDS = 0.3
_SCOPES = ["https://www.googleapis.com/auth/pubsub"]


class PubSubSource(Source):
    """See the module docstring."""

    config_model = PubSubSourceConfig
    config: PubSubSourceConfig

    def __init__(self, context: SourceContext, *, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(context)
        self.sleep = sleep
        self.telemetry = context.telemetry
        self.client: Any = None
        self.future: Any = None
        self.stopping: asyncio.Event | None = None
        self._closing = False  # read by the library's callback threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: asyncio.Queue[Any] | None = None
        self._in_hand: list[Any] = []
        self._got_messages = False
        self._delivering = False
        self._late: list[Any] = []  # arrived while stopping (appended from library threads)
        self._run_task: asyncio.Task[None] | None = None
        self._deliver_task: asyncio.Task[None] | None = None
        self._partition = self.config.tenant

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self._inbox = asyncio.Queue()
        self._deliver_task = asyncio.create_task(self._deliver_loop())
        self._run_task = asyncio.create_task(self._run(), name=f"source {self.context.source_id}")
        log.info("pulling from Pub/Sub", extra={
            "source": self.context.source_id, "subscription": self.config.subscription,
            "emulator": os.environ.get("PUBSUB_EMULATOR_HOST")})

    async def stop(self) -> None:
        """Stop taking messages, let the batch being journaled finish, close the stream, then
        nack what is left in hand (after the stream is closed, so the service cannot hand
        the nacked messages straight back to this stream)."""
        if self.stopping is None:
            return
        self._closing = True
        self.stopping.set()
        if self._deliver_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle(), _STOP_GRACE_SECONDS)
            self._deliver_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deliver_task
        if self._run_task is not None:
            await self._run_task
        if self.future is not None:
            self.future.cancel()  # the library nacks what it had not handed over yet
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.future.result, 30)
        left, self._in_hand = self._in_hand + self._late, []
        assert self._inbox is not None
        while not self._inbox.empty():
            left.append(self._inbox.get_nowait())
        if left and self.client is not None:
            # The stream's end reaches the server a moment after the client closed it; a nack
            # that arrives first can be undone by the server's own handling of the closed
            # stream (seen with Google's emulator: the messages then wait for their deadline).
            await asyncio.sleep(_NACK_AFTER_CLOSE_SECONDS)
            await asyncio.to_thread(self._nack_unary, left)
        if self.client is not None:
            await asyncio.to_thread(self.client.close)

    def _nack_unary(self, messages: list[Any]) -> None:
        """Nack through the ModifyAckDeadline RPC (the stream's dispatcher is gone)."""
        ack_ids = [m.ack_id for m in messages]
        try:
            for start in range(0, len(ack_ids), 1000):
                self.client.modify_ack_deadline(subscription=self.config.subscription,
                                                ack_ids=ack_ids[start:start + 1000],
                                                ack_deadline_seconds=0)
            self.telemetry.pulled("released", len(ack_ids))
        except Exception as exc:
            log.warning("held messages not nacked; redelivered after their ack deadline",
                        extra={"source": self.context.source_id, "messages": len(ack_ids),
                               "error": f"{type(exc).__name__}: {exc}"})

    async def _idle(self) -> None:
        while self._delivering:
            await asyncio.sleep(0.01)

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        """Each line as the data of one message (`vigil test`, `vigil process`)."""
        now = self.context.clock()
        return [event_from_data(line, self.config.format, now) for line in lines]

    def health(self) -> dict[str, Any]:
        streaming = self.future is not None and not self.future.done()
        return {"subscription": self.config.subscription, "subscribed": streaming,
                "held_messages": len(self._in_hand) + (self._inbox.qsize() if self._inbox
                                                       else 0),
                "backlog": "not exposed by the subscriber API (Cloud Monitoring "
                           "num_undelivered_messages)"}

    # -- the stream -------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.stopping is not None
        backoff = Backoff(self.config.backoff, sleep=self.sleep)
        while not self.stopping.is_set():
            try:
                if self.client is None:
                    self.client = await asyncio.to_thread(self._make_client)
                self.future = await asyncio.to_thread(self._subscribe)
                self._got_messages = False
                log.info("subscribed", extra={"source": self.context.source_id,
                                              "subscription": self.config.subscription})
                ended = asyncio.wrap_future(self.future)
                stopper = asyncio.ensure_future(self.stopping.wait())
                await asyncio.wait({ended, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if self.stopping.is_set():
                    ended.cancel()
                    return
                ended.result()  # the stream ended on its own: raises what ended it
                raise RuntimeError("the streaming pull ended")
            except Exception as exc:
                if self.stopping.is_set():
                    return
                if self._got_messages:  # it worked for a while: start the delays over
                    backoff.reset()
                self.telemetry.pull_retry("subscribe")
                self.telemetry.error("service", "receive")
                log.warning("Pub/Sub stream failed; subscribing again with backoff", extra={
                    "source": self.context.source_id, "error": f"{type(exc).__name__}: {exc}",
                    "attempt": backoff.failures + 1})
                await backoff.wait(self.stopping)

    def _make_client(self) -> Any:
        from google.cloud import pubsub_v1

        kwargs: dict[str, Any] = {}
        config = self.config
        if config.credentials_file is not None and not os.environ.get("PUBSUB_EMULATOR_HOST"):
            from google.oauth2 import service_account

            path = config.credentials_file
            if self.context.conf_dir is not None and not path.is_absolute():
                path = self.context.conf_dir / path
            kwargs["credentials"] = service_account.Credentials.from_service_account_file(
                str(path), scopes=_SCOPES)
        if config.endpoint is not None:
            kwargs["client_options"] = {"api_endpoint": config.endpoint}
        return pubsub_v1.SubscriberClient(**kwargs)

    def _subscribe(self) -> Any:
        from google.cloud import pubsub_v1

        config = self.config
        flow = pubsub_v1.types.FlowControl(max_messages=config.max_messages,
                                           max_bytes=config.max_bytes,
                                           max_lease_duration=config.max_lease_seconds)
        return self.client.subscribe(config.subscription, self._on_message, flow_control=flow,
                                     await_callbacks_on_shutdown=True)

    def _on_message(self, message: Any) -> None:
        """The library's callback (its threads): hand the message to the loop. While stopping,
        keep it for the nack that follows the stream's close."""
        if self._closing or self._loop is None or self._inbox is None:
            self._late.append(message)
            return
        try:
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, message)
        except RuntimeError:  # the loop is closed
            self._late.append(message)

    # -- journaling -------------------------------------------------------------------------

    async def _deliver_loop(self) -> None:
        assert self._inbox is not None and self._loop is not None
        inbox, loop, config = self._inbox, self._loop, self.config
        while True:
            batch = [await inbox.get()]
            self._in_hand = batch
            deadline = loop.time() + config.batch_wait_seconds
            while len(batch) < config.batch_events:
                if not inbox.empty():
                    batch.append(inbox.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(inbox.get(), remaining))
                except TimeoutError:
                    break
            if not await self._journal(batch):
                return  # stopping: stop() nacks what is in hand
            self._in_hand = []

    async def _journal(self, batch: list[Any]) -> bool:
        """Journal then ack a batch (or nack it when the journal fails); False when the
        source is stopping first."""
        self.telemetry.pulled("received", len(batch))
        self._got_messages = True
        self.telemetry.received_bytes(sum(len(m.data) for m in batch), self.config.tenant or "")
        assert self.stopping is not None
        if not await wait_for_capacity(self.context.queue, self._partition, self.stopping):
            return False
        events = [self._event(m) for m in batch]
        self.context.count_parse_errors(events)
        self._delivering = True
        try:
            await self.context.deliver(events)
        except Exception as exc:
            log.warning("events could not be journaled; messages nacked for redelivery", extra={
                "source": self.context.source_id, "messages": len(batch),
                "error": f"{type(exc).__name__}: {exc}"})
            self.telemetry.pulled("failed", len(batch))
            for message in batch:
                message.nack()
            self.telemetry.pulled("released", len(batch))
            await self.sleep(1.0)  # the journal is failing: do not spin on redeliveries
            return True
        finally:
            self._delivering = False
        for message in batch:
            message.ack()
        self.telemetry.pulled("acknowledged", len(batch))
        return True

    def _event(self, message: Any) -> Event:
        stamp = message.publish_time
        published = (datetime(*stamp.timetuple()[:6], stamp.microsecond, tzinfo=UTC)
                     if isinstance(stamp, datetime) else self.context.clock())
        event = event_from_data(message.data, self.config.format, published)
        event[ORIGIN] = f"pubsub://{self.config.subscription}/{message.message_id}"
        return event
