"""HTTP ingest: `POST /v1/logs` and Splunk HEC (`/services/collector/event`, `.../raw`).

Every request is authenticated by a token (which may name the tenant), refused with 503 and
Retry-After while the queue is over its bound, and answered 200 only once its events are durable
in the queue (`SourceContext.deliver`). Malformed parts of a body are kept as marked events:
`/v1/logs` names them in its 200 reply (everything was stored, so no client resends it); HEC
answers as Splunk documents (400, code 6 `Invalid data format`, `invalid-event-number`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from collector.logs import RateLimitedLog
from collector.sources.base import Source, SourceContext
from collector.sources.http.bodies import (
    BadEncoding,
    BodyTooLarge,
    Decoded,
    HecDecoded,
    decode_hec_events,
    decode_hec_raw,
    decode_logs,
    inflate_gzip,
)
from collector.sources.http.config import HttpSourceConfig
from collector.sources.http.tokens import Token, TokenTable, parse_authorization
from collector.sources.listener import TcpListener
from collector.sources.tls import server_context
from core.config import DATASET_RE, split_address
from core.events import DATASET, Event

log = logging.getLogger(__name__)

# Datasets become lake path components: the same strictness as tenant ids, dots allowed.
_HEC_DEFAULTS = ("host", "source", "sourcetype", "index")
_SHUTDOWN_SECONDS = 5.0
# Bodies larger than this are inflated and decoded on a worker thread: the loop moves bytes.
_OFF_LOOP_BYTES = 256 * 1024
T = TypeVar("T")


class Rejection(Exception):
    """A request answered with an error status before any event was taken."""

    def __init__(self, status: int, message: str, hec_text: str = "", hec_code: int | None = None,
                 headers: dict[str, str] | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.close = close  # answer, then close the connection without reading the rest
        self.status = status
        self.message = message
        self.hec_text = hec_text or message
        self.hec_code = hec_code
        self.headers = headers or {}


class HttpSource(Source):
    """`type: http`: JSON / NDJSON over HTTP(S), Splunk HEC compatible."""

    config_model = HttpSourceConfig
    config: HttpSourceConfig

    def __init__(self, context: SourceContext) -> None:
        super().__init__(context)
        self.tokens = TokenTable([])
        self.runner: web.AppRunner | None = None
        self.listener: TcpListener | None = None
        self.notes = RateLimitedLog(log)

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        """Lines as one NDJSON body of `/v1/logs`."""
        return decode_logs(b"\n".join(lines), self.context.clock(), self.config.max_depth).events

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/logs", self._logs)
        for path in ("/services/collector", "/services/collector/event",
                     "/services/collector/event/1.0"):
            app.router.add_post(path, self._hec_event)
        for path in ("/services/collector/raw", "/services/collector/raw/1.0"):
            app.router.add_post(path, self._hec_raw)
        for path in ("/services/collector/health", "/services/collector/health/1.0"):
            app.router.add_get(path, self._hec_health)
        return app

    async def start(self) -> None:
        config = self.config
        try:
            self.tokens = TokenTable.from_config(config.tokens, self.context.conf_dir)
        except ValueError as exc:
            raise ValueError(f"source {self.context.source_id!r}: {exc}") from None
        tls = None
        if config.tls is not None:
            tls = server_context(config.tls, self.context.source_id,
                                 conf_dir=self.context.conf_dir, data_dir=self.context.data_dir,
                                 host=split_address(config.address)[0])
        # Bodies are inflated here, under the size limit, not by aiohttp (a gzip bomb).
        # aiohttp's keep-alive timer runs from the connection's start (or the last answer)
        # until a request head is complete: it is the header read timeout.
        self.runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False,
                                    auto_decompress=False,
                                    keepalive_timeout=config.header_timeout_seconds,
                                    shutdown_timeout=_SHUTDOWN_SECONDS,
                                    logger=ServerLog(self))
        await self.runner.setup()
        assert self.runner.server is not None
        self.listener = TcpListener(
            self.context, config.address, self.runner.server,
            max_connections=config.max_connections, tls=tls,
            handshake_timeout=config.tls.handshake_timeout_seconds if config.tls else 10.0,
            max_connections_per_peer=config.max_connections_per_peer)
        await self.listener.start()
        log.info("listening", extra={"source": self.context.source_id, "protocol": "http",
                                     "address": self.bound_address(), "tls": tls is not None})

    def bound_address(self) -> str | None:
        return self.listener.bound_address() if self.listener else None

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener.abort_handshakes()
        if self.runner is not None:
            await self.runner.cleanup()  # lets requests in flight finish (and be enqueued)
        if self.listener is not None:
            await self.listener.wait_closed()

    def health(self) -> dict[str, Any]:
        return {"address": self.bound_address(), "tls": self.config.tls is not None,
                "connections": len(self.listener.connections) if self.listener else 0,
                **{f"token_{name}": count for name, count in self.tokens.stats().items()}}

    def maintain(self) -> None:
        self.tokens.refresh()

    # -- handlers -----------------------------------------------------------------------

    async def _logs(self, request: web.Request) -> web.Response:
        try:
            token, body, dataset = await self._admit(request)
            decoded = await self._off_loop(len(body), decode_logs, body, self.context.clock(),
                                           self.config.max_depth)
            await self._deliver(decoded, request, token, dataset)
        except Rejection as rejection:
            return await self._rejected(request, rejection, {"error": rejection.message})
        if decoded.problems:  # stored all the same: a success, so no client resends it
            return self._reply(200, {"accepted": len(decoded.events), "invalid": decoded.invalid,
                                     "errors": decoded.problems,
                                     "note": "every line was stored; the invalid ones are "
                                             "kept as they came, marked, for review: do not "
                                             "resend"})
        return self._reply(200, {"accepted": len(decoded.events)})

    async def _hec_event(self, request: web.Request) -> web.Response:
        try:
            token, body, dataset = await self._admit(request, hec=True)
            decoded = await self._off_loop(len(body), decode_hec_events, body,
                                           self.context.clock(), self._hec_defaults(request),
                                           self.config.max_depth)
            await self._deliver(decoded, request, token, dataset)
        except Rejection as rejection:
            return await self._rejected(request, rejection, self._hec_body(rejection))
        if decoded.first_invalid is not None:
            assert isinstance(decoded, HecDecoded)
            return self._reply(400, {"text": decoded.hec_text, "code": decoded.hec_code,
                                     "invalid-event-number": decoded.first_invalid})
        return self._reply(200, {"text": "Success", "code": 0})

    async def _hec_raw(self, request: web.Request) -> web.Response:
        try:
            token, body, dataset = await self._admit(request, hec=True)
            decoded = await self._off_loop(len(body), decode_hec_raw, body, self.context.clock(),
                                           self._hec_defaults(request))
            if not decoded.events:
                raise Rejection(400, "no data", "No data", 5)
            await self._deliver(decoded, request, token, dataset)
        except Rejection as rejection:
            return await self._rejected(request, rejection, self._hec_body(rejection))
        return self._reply(200, {"text": "Success", "code": 0})

    async def _hec_health(self, request: web.Request) -> web.Response:
        if self.context.queue.over_bound():
            return self._reply(503, {"text": "HEC is unhealthy, queues are full", "code": 18})
        return self._reply(200, {"text": "HEC is healthy", "code": 17})

    # -- the steps every ingest request takes -------------------------------------------

    async def _admit(self, request: web.Request, *, hec: bool = False
                     ) -> tuple[Token, bytes, str | None]:
        """Authenticate, check capacity, read and inflate the body; raises Rejection."""
        header = request.headers.get("Authorization")
        presented = parse_authorization(header)
        challenge = {"WWW-Authenticate": 'Splunk' if hec else 'Bearer'}
        if presented is None:
            if header:
                raise Rejection(401, "malformed Authorization header: expected `Bearer <token>`"
                                " or `Splunk <token>`", "Invalid authorization", 3, challenge)
            raise Rejection(401, "missing Authorization header", "Token is required", 2,
                            challenge)
        token = self.tokens.lookup(presented)
        if token is None:
            log.warning("request with an unknown token refused",
                        extra={"source": self.context.source_id, "peer": request.remote})
            raise Rejection(403, "unknown token", "Invalid token", 4)
        # The whole queue, or this token's tenant over its own share (a flooding tenant is
        # refused alone).
        if self.context.over_bound([token.tenant] if token.tenant else ()) is not None:
            retry = {"Retry-After": str(self.config.retry_after_seconds)}
            raise Rejection(503, "queue full, retry later", "Server is busy", 9, retry)
        dataset = request.query.get("dataset")
        if dataset is not None and not DATASET_RE.fullmatch(dataset):
            raise Rejection(400, f"dataset must match {DATASET_RE.pattern}",
                            "Invalid data format", 6)
        tenant = token.tenant or self.context.router.tenant_of_peer(request.remote) or ""
        body = await self._read_body(request, tenant)
        if not body.strip():
            raise Rejection(400, "empty body", "No data", 5)
        return token, body, dataset

    async def _read_body(self, request: web.Request, tenant: str) -> bytes:
        limit = self.config.max_body_bytes
        too_large = Rejection(413, f"body over {limit} bytes",
                              f"Content too large (maximum is {limit} bytes)")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        chunks, size = [], 0
        seconds = self.config.body_timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            self.client_fault("read_timeout", "request body not received in time; closing "
                              "the connection", request.remote, body_timeout_seconds=seconds)
            raise Rejection(408, f"body not received within {seconds:g} s",
                            "Request timeout", close=True) from None
        except (ConnectionError, ClientPayloadError):
            self.client_fault("client_disconnected", "client went away during its request "
                              "body", request.remote)
            raise Rejection(400, "connection lost during the body", close=True) from None
        body = b"".join(chunks)
        self.context.telemetry.received_bytes(size, tenant)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            try:
                return await self._off_loop(size, inflate_gzip, body, limit,
                                            self.config.max_gzip_members)
            except BodyTooLarge:
                raise too_large from None
            except BadEncoding as exc:
                raise Rejection(400, str(exc), "Invalid data format", 6) from None
        if encoding not in ("identity", ""):
            raise Rejection(415, f"unsupported Content-Encoding {encoding!r} (use gzip)",
                            "Unsupported content encoding")
        return body

    async def _off_loop(self, size: int, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)`, on a worker thread when the body is large (inflating or
        decoding megabytes would stall every source and /healthz)."""
        if size > _OFF_LOOP_BYTES:
            return await asyncio.to_thread(function, *args)
        return function(*args)

    def client_fault(self, cause: str, message: str, peer: str | None, **extra: Any) -> None:
        """A client's misbehaviour: counted each time, logged once a minute per cause."""
        self.context.telemetry.error(cause, "receive")
        self.notes.log(logging.WARNING, cause, message, source=self.context.source_id, peer=peer,
                       **extra)

    async def _deliver(self, decoded: Decoded, request: web.Request, token: Token,
                       dataset: str | None) -> None:
        if dataset is not None:
            for event in decoded.events:
                event[DATASET] = dataset
        self.context.count_parse_errors(decoded.events, request.remote)
        try:
            await self.context.deliver(decoded.events, request.remote, token.tenant)
        except Exception:  # the queue is closing or cannot write: the sender must retry
            log.exception("events could not be made durable; answering 503",
                          extra={"source": self.context.source_id, "events": len(decoded.events)})
            retry = {"Retry-After": str(self.config.retry_after_seconds)}
            raise Rejection(503, "events could not be stored, retry later", "Server is busy", 9,
                            retry) from None

    def _hec_defaults(self, request: web.Request) -> dict[str, str]:
        return {key: request.query[key] for key in _HEC_DEFAULTS if key in request.query}

    def _hec_body(self, rejection: Rejection) -> dict[str, Any]:
        body: dict[str, Any] = {"text": rejection.hec_text}
        if rejection.hec_code is not None:
            body["code"] = rejection.hec_code
        return body

    async def _rejected(self, request: web.Request, rejection: Rejection,
                        body: dict[str, Any]) -> web.Response:
        response = self._reply(rejection.status, body, rejection.headers)
        if rejection.close:  # send the answer, then drop the rest of the body unread
            response.force_close()
            try:
                await response.prepare(request)
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                pass
            if request.protocol is not None:
                request.protocol.force_close()
        return response

    def _reply(self, status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> web.Response:
        self.context.telemetry.http_response(status)
        return web.json_response(body, status=status, headers=headers)


class ServerLog:
    """aiohttp's server log for one source: a malformed request or a client gone mid-request is
    the client's doing (counted, one line a minute per cause, no traceback); anything else is
    a fault of ours and logged whole."""

    def __init__(self, source: HttpSource) -> None:
        self.source = source

    def debug(self, *args: Any, **kwargs: Any) -> None:
        log.debug(*args, **kwargs)

    def exception(self, message: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        peer = args[0] if args and isinstance(args[0], str) else None
        if isinstance(exc_info, HttpProcessingError):
            self.source.client_fault("bad_request", "malformed HTTP request refused", peer,
                                     reason=exc_info.message or type(exc_info).__name__)
        elif isinstance(exc_info, ConnectionError | ClientPayloadError):
            self.source.client_fault("client_disconnected", "client went away during its "
                                     "request", peer)
        else:
            log.error(message, *args, exc_info=exc_info, **kwargs)
