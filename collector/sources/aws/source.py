"""`type: s3_sqs`: S3 objects announced on SQS, read, split into events and journaled; the SQS
message is deleted only once every event of its objects is durable (`SourceContext.deliver`).

Per message: the objects it announces are downloaded and decoded on worker threads (boto3 is
blocking), their events appended in batches as they are read, and the message's visibility
timeout renewed every half of it until the last append. A crash part-way through re-reads the
object after the timeout: at-least-once, like every Vigil source.

An object that cannot be read or decoded (missing, access denied, corrupt gzip, a `json`
object that is not JSON) is retried through SQS: the message becomes visible again after a
growing delay. At its last attempt (the queue's redrive `maxReceiveCount`, or
`max_receive_count` without a redrive policy) a record naming the bucket, key and error is
journaled for the tenant's dead letter, once; then the message is left to the queue's redrive
policy (SQS moves it to the queue's dead-letter queue), or, without one, deleted - the dead
letter names the object, which stays in its bucket. A message that is not an S3 notification
at all is dead-lettered whole and deleted at once.

Fault injection for crash tests: with VIGIL_FAULT_HOLD_BEFORE_APPEND=<path> in the
environment, the source writes the object's s3:// URL to <path> once the first batch of an
object was downloaded and decoded, then waits (until stopped) instead of appending it. A test
kills the daemon there: exactly between download and journal append.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from collector.sources.aws.config import S3SqsSourceConfig
from collector.sources.aws.notifications import NotANotification, ObjectRef, objects_in_message
from collector.sources.aws.objects import Inflater, ObjectFailure, ObjectReader, RecordDecoder
from collector.sources.base import Source, SourceContext
from collector.sources.pull import ORIGIN, Backoff, Sleep, wait_for_capacity
from core.events import TIMESTAMP, Event

log = logging.getLogger(__name__)

T = TypeVar("T")
FAULT_HOLD_ENV = "VIGIL_FAULT_HOLD_BEFORE_APPEND"
_STOP_GRACE_SECONDS = 10.0
_BACKLOG_SECONDS = 30.0
_DELETE_ATTEMPTS = 5
# Error codes worth retrying soon; anything else (NoSuchKey, AccessDenied) needs a fix first.
_TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                              "InternalError", "ServiceUnavailable", "503", "500"})


class _Stopped(Exception):
    """The source is stopping while a message is in hand: release it."""


class S3SqsSource(Source):
    """See the module docstring."""

    config_model = S3SqsSourceConfig
    config: S3SqsSourceConfig

    def __init__(self, context: SourceContext, *, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__(context)
        self.sleep = sleep
        self.sqs: Any = None
        self.s3: Any = None
        self.max_receive_count = self.config.max_receive_count
        self.redrive = False
        self.stopping: asyncio.Event | None = None
        self.inflight: dict[asyncio.Task[None], str] = {}
        self._slot_free: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._backlog_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=self.config.concurrency * 2 + 2,
                                            thread_name_prefix=f"s3sqs-{context.source_id}")
        self._partition = self.config.tenant  # the journal partition when the tenant is fixed
        self.telemetry = context.telemetry
        self.connected = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.stopping = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"source {self.context.source_id}")
        log.info("pulling from SQS", extra={
            "source": self.context.source_id, "queue_url": self.config.queue_url,
            "region": self.config.region(), "endpoint": self.config.aws.endpoint_url,
            "role": self.config.aws.role_arn})

    async def stop(self) -> None:
        """Stop receiving (an open long poll ends within `wait_time_seconds`; what it brings
        is released), let messages in hand finish for a few seconds, release the rest."""
        if self.stopping is None:
            return
        self.stopping.set()
        if self._backlog_task is not None:
            self._backlog_task.cancel()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task),
                                       self.config.wait_time_seconds + 15)
            except TimeoutError:
                self._task.cancel()
                log.warning("SQS receive did not return in time; its messages reappear after "
                            "their visibility timeout", extra={"source": self.context.source_id})
        if self.inflight:
            _, pending = await asyncio.wait(list(self.inflight), timeout=_STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        """Each line as the content of one object (`vigil test`, `vigil process`)."""
        events: list[Event] = []
        for line in lines:
            decoder = RecordDecoder(self.config.format, self.context.clock(),
                                    self.config.max_document_bytes)
            events += decoder.feed(line) + decoder.finish()
        return events

    def health(self) -> dict[str, Any]:
        return {"queue_url": self.config.queue_url, "connected": self.connected,
                "in_flight_messages": len(self.inflight),
                "max_receive_count": self.max_receive_count, "redrive_policy": self.redrive}

    # -- threads ----------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking (boto3) call on the source's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- receiving ------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.stopping is not None and self._slot_free is not None
        backoff = Backoff(self.config.backoff, sleep=self.sleep)
        while not self.stopping.is_set():
            try:
                await self._connect()
                break
            except Exception as exc:
                self._retry("connect", exc, backoff)
                await backoff.wait(self.stopping)
        backoff.reset()
        if self.stopping.is_set():
            return
        self._backlog_task = asyncio.create_task(self._watch_backlog())
        queue, concurrency = self.context.queue, self.config.concurrency
        while not self.stopping.is_set():
            if not await wait_for_capacity(queue, self._partition, self.stopping):
                break
            free = concurrency - len(self.inflight)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                messages = await self._call(
                    self.sqs.receive_message, QueueUrl=self.config.queue_url,
                    MaxNumberOfMessages=min(free, self.config.max_messages),
                    WaitTimeSeconds=self.config.wait_time_seconds,
                    VisibilityTimeout=self.config.visibility_timeout_seconds,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"])
            except Exception as exc:
                if self.stopping.is_set():
                    break
                self._retry("receive", exc, backoff)
                await backoff.wait(self.stopping)
                continue
            backoff.reset()
            received = messages.get("Messages", [])
            if received:
                self.telemetry.pulled("received", len(received))
            if self.stopping.is_set():
                for message in received:
                    await self._release(message["ReceiptHandle"])
                break
            for message in received:
                task = asyncio.create_task(self._handle(message))
                self.inflight[task] = message["MessageId"]
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task, None)
        if self._slot_free is not None:
            self._slot_free.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("message handling failed", exc_info=task.exception(),
                      extra={"source": self.context.source_id})

    async def _connect(self) -> None:
        from core.aws.session import aws_client, aws_session

        config = self.config
        session = await self._call(aws_session, config.aws, config.region())
        pool = config.concurrency + 4
        self.sqs = await self._call(aws_client, session, "sqs", config.aws, pool=pool,
                                    read_timeout=config.wait_time_seconds + 30)
        self.s3 = await self._call(aws_client, session, "s3", config.aws, pool=pool)
        reply = await self._call(self.sqs.get_queue_attributes, QueueUrl=config.queue_url,
                                 AttributeNames=["RedrivePolicy", "ApproximateNumberOfMessages"])
        attributes = reply.get("Attributes", {})
        policy = attributes.get("RedrivePolicy")
        if policy:
            self.max_receive_count = int(orjson.loads(policy)["maxReceiveCount"])
            self.redrive = True
        self.telemetry.backlog(float(attributes.get("ApproximateNumberOfMessages", 0)))
        self.connected = True
        log.info("connected to SQS", extra={
            "source": self.context.source_id, "queue_url": config.queue_url,
            "redrive_policy": self.redrive, "max_receive_count": self.max_receive_count})

    async def _watch_backlog(self) -> None:
        while True:
            await self.sleep(_BACKLOG_SECONDS)
            try:
                reply = await self._call(self.sqs.get_queue_attributes,
                                         QueueUrl=self.config.queue_url,
                                         AttributeNames=["ApproximateNumberOfMessages"])
                self.telemetry.backlog(
                    float(reply["Attributes"].get("ApproximateNumberOfMessages", 0)))
            except Exception as exc:
                log.debug("queue attributes unavailable", extra={
                    "source": self.context.source_id, "error": _describe(exc)})

    def _retry(self, operation: str, exc: BaseException, backoff: Backoff) -> None:
        self.telemetry.pull_retry(operation)
        self.telemetry.error("service", "receive")
        log.warning("SQS call failed; retrying with backoff", extra={
            "source": self.context.source_id, "operation": operation, "error": _describe(exc),
            "attempt": backoff.failures + 1})

    # -- one message ----------------------------------------------------------------------

    async def _handle(self, message: dict[str, Any]) -> None:
        receipt = message["ReceiptHandle"]
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            refs = objects_in_message(message.get("Body", ""))
        except NotANotification as exc:
            await self._not_a_notification(message, str(exc))
            return
        keeper = asyncio.create_task(self._keep_invisible(receipt))
        ref: ObjectRef | None = None
        try:
            for ref in refs:
                if any(fnmatch.fnmatchcase(ref.key, p) for p in self.config.exclude_keys):
                    self.telemetry.discarded("excluded")
                    continue
                await self._read_object(ref)
        except ObjectFailure as failure:
            keeper.cancel()
            assert ref is not None
            await self._object_failed(message, ref, failure, count)
            return
        except (_Stopped, asyncio.CancelledError):
            keeper.cancel()
            await asyncio.shield(self._release(receipt))
            return
        except Exception as exc:  # the journal refused the events (closing, failing)
            keeper.cancel()
            log.warning("events could not be journaled; the message is retried", extra={
                "source": self.context.source_id, "message_id": message["MessageId"],
                "error": _describe(exc)})
            self.telemetry.pulled("failed")
            await self._release(receipt, self._retry_delay(count))
            return
        finally:
            keeper.cancel()
        if await self._delete(receipt):
            self.telemetry.pulled("acknowledged")

    async def _read_object(self, ref: ObjectRef) -> None:
        """Download, decode and deliver one object, batch by batch."""
        from botocore.exceptions import BotoCoreError, ClientError

        config, context = self.config, self.context
        origin = f"s3://{ref.bucket}/{ref.key}"
        try:
            response = await self._call(self.s3.get_object, Bucket=ref.bucket, Key=ref.key)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "?"))
            raise ObjectFailure(f"GetObject failed: {code}: {error.get('Message', '')}".strip(),
                                transient=code in _TRANSIENT_CODES) from None
        except (BotoCoreError, OSError) as exc:
            raise ObjectFailure(f"GetObject failed: {exc}", transient=True) from None
        body = response["Body"]
        reader = ObjectReader(body, RecordDecoder(config.format, context.clock(),
                                                  config.max_document_bytes),
                              Inflater(config.compression))
        tenant = config.tenant or ""
        held = False
        delivered = 0
        try:
            while not reader.done:
                before = reader.read_bytes
                try:
                    events = await self._call(reader.next_batch, config.batch_events)
                except ObjectFailure:
                    raise
                except (BotoCoreError, OSError, ValueError) as exc:
                    raise ObjectFailure(f"reading the object failed: {exc}",
                                        transient=True) from None
                self.telemetry.received_bytes(reader.read_bytes - before, tenant)
                if not events:
                    continue
                for event in events:
                    event[ORIGIN] = origin
                context.count_parse_errors(events)
                if not held:
                    held = True
                    await self._fault_hold(origin)
                assert self.stopping is not None
                if not await wait_for_capacity(context.queue, self._partition, self.stopping):
                    raise _Stopped()
                await context.deliver(events)
                delivered += len(events)
        finally:
            await self._call(body.close)
        log.debug("object read", extra={"source": context.source_id, "object": origin,
                                        "events": delivered, "bytes": reader.read_bytes})

    async def _keep_invisible(self, receipt: str) -> None:
        """Renew the visibility timeout every half of it while the message is in hand."""
        timeout = self.config.visibility_timeout_seconds
        while True:
            await self.sleep(timeout / 2)
            try:
                await self._call(self.sqs.change_message_visibility,
                                 QueueUrl=self.config.queue_url, ReceiptHandle=receipt,
                                 VisibilityTimeout=timeout)
                self.telemetry.lease_extended()
            except Exception as exc:
                self.telemetry.pull_retry("change_visibility")
                log.warning("visibility timeout not renewed", extra={
                    "source": self.context.source_id, "error": _describe(exc)})

    async def _object_failed(self, message: dict[str, Any], ref: ObjectRef,
                             failure: ObjectFailure, count: int) -> None:
        receipt = message["ReceiptHandle"]
        self.telemetry.pulled("failed")
        self.telemetry.error("object", "receive")
        last = count >= self.max_receive_count
        log.warning("S3 object could not be read", extra={
            "source": self.context.source_id, "bucket": ref.bucket, "key": ref.key,
            "error": failure.reason, "receive_count": count,
            "max_receive_count": self.max_receive_count,
            "outcome": "dead_letter" if last else "retry"})
        if not last:
            await self._release(receipt, self._retry_delay(count))
            return
        record: Event = {
            TIMESTAMP: self.context.clock(), "aws.s3.bucket.name": ref.bucket,
            "aws.s3.object.key": ref.key, "error.message": failure.reason,
            "aws.sqs.message_id": message["MessageId"], "aws.sqs.receive_count": count,
            ORIGIN: f"s3://{ref.bucket}/{ref.key}"}
        reason = f"s3://{ref.bucket}/{ref.key}: {failure.reason}"
        try:
            await self.context.deliver_failure(reason, record)
        except Exception as exc:
            log.warning("dead letter could not be journaled; the message is retried", extra={
                "source": self.context.source_id, "error": _describe(exc)})
            await self._release(receipt, self._retry_delay(count))
            return
        if self.redrive:
            # Visible again at once: the next receive makes SQS move it to the queue's
            # dead-letter queue (its receive count is at maxReceiveCount).
            await self._release(receipt)
        elif await self._delete(receipt):
            self.telemetry.pulled("acknowledged")

    async def _not_a_notification(self, message: dict[str, Any], reason: str) -> None:
        body = message.get("Body", "")
        self.telemetry.pulled("failed")
        log.warning("SQS message is not an S3 notification; dead-lettered whole", extra={
            "source": self.context.source_id, "message_id": message["MessageId"],
            "error": reason})
        record: Event = {TIMESTAMP: self.context.clock(), "message": body,
                         "aws.sqs.message_id": message["MessageId"],
                         ORIGIN: self.config.queue_url}
        try:
            await self.context.deliver_failure(f"SQS message: {reason}", record)
        except Exception as exc:
            log.warning("dead letter could not be journaled; the message is retried", extra={
                "source": self.context.source_id, "error": _describe(exc)})
            await self._release(message["ReceiptHandle"], 30)
            return
        if await self._delete(message["ReceiptHandle"]):
            self.telemetry.pulled("acknowledged")

    def _retry_delay(self, count: int) -> int:
        backoff = self.config.backoff
        delay = min(backoff.max_seconds, backoff.initial_seconds * 2 ** min(count - 1, 20))
        return max(0, min(int(delay), 43200))

    async def _release(self, receipt: str, delay: int = 0) -> None:
        """Hand the message back: visible again after `delay` seconds."""
        try:
            await self._call(self.sqs.change_message_visibility, QueueUrl=self.config.queue_url,
                             ReceiptHandle=receipt, VisibilityTimeout=delay)
            self.telemetry.pulled("released")
        except Exception as exc:
            log.warning("message not released; it reappears after its visibility timeout",
                        extra={"source": self.context.source_id, "error": _describe(exc)})

    async def _delete(self, receipt: str) -> bool:
        backoff = Backoff(self.config.backoff, sleep=self.sleep)
        for attempt in range(1, _DELETE_ATTEMPTS + 1):
            try:
                await self._call(self.sqs.delete_message, QueueUrl=self.config.queue_url,
                                 ReceiptHandle=receipt)
                return True
            except Exception as exc:
                self.telemetry.pull_retry("delete")
                log.warning("SQS delete failed", extra={
                    "source": self.context.source_id, "error": _describe(exc),
                    "attempt": attempt})
                if attempt < _DELETE_ATTEMPTS:
                    await backoff.wait()
        log.error("SQS message not deleted: its objects will be read again (duplicates)",
                  extra={"source": self.context.source_id})
        return False

    async def _fault_hold(self, origin: str) -> None:
        path = os.environ.get(FAULT_HOLD_ENV)
        if not path:
            return
        Path(path).write_text(origin)
        log.warning("fault injection: holding before the journal append", extra={
            "source": self.context.source_id, "object": origin})
        assert self.stopping is not None
        await self.stopping.wait()
        raise _Stopped()


def _describe(exc: BaseException) -> str:
    """An error for the log: its type and message (boto3 messages carry no secrets)."""
    return f"{type(exc).__name__}: {exc}"
