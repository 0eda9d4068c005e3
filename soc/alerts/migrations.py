"""The store's schema as a versioned list of SQL scripts, applied in order and recorded.

The SQL is portable (PostgreSQL runs it too) except for the auto-increment key, which each
dialect spells its own way: `{AUTO_ID}` is replaced by `db.Database` for its dialect. Times are
ISO-8601 UTC strings with microseconds, so text order is time order in every engine.
"""

from __future__ import annotations

# (version, name, statements). Never edit a released entry: append a new one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "alerts, notes, audit, notification outbox", [
        """CREATE TABLE alerts (
            id VARCHAR(64) PRIMARY KEY,
            tenant VARCHAR(64) NOT NULL,
            dedup_key TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            rule_name TEXT NOT NULL,
            severity VARCHAR(16) NOT NULL,
            dataset TEXT,
            group_key TEXT NOT NULL,
            status VARCHAR(16) NOT NULL,
            assignee VARCHAR(64),
            escalation_level VARCHAR(4),
            escalation_reason TEXT,
            resolution VARCHAR(32),
            first_seen VARCHAR(40) NOT NULL,
            last_seen VARCHAR(40) NOT NULL,
            match_count INTEGER NOT NULL,
            suppressed INTEGER NOT NULL,
            events TEXT NOT NULL,
            details TEXT NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            updated_at VARCHAR(40) NOT NULL,
            acknowledged_at VARCHAR(40),
            resolved_at VARCHAR(40),
            ack_due VARCHAR(40) NOT NULL,
            resolve_due VARCHAR(40) NOT NULL,
            ack_breached_at VARCHAR(40),
            resolve_breached_at VARCHAR(40)
        )""",
        "CREATE INDEX alerts_by_tenant ON alerts (tenant, created_at)",
        "CREATE INDEX alerts_by_status ON alerts (status, ack_due)",
        """CREATE TABLE alert_notes (
            id {AUTO_ID},
            alert_id VARCHAR(64) NOT NULL REFERENCES alerts (id),
            tenant VARCHAR(64) NOT NULL,
            author VARCHAR(64) NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX alert_notes_by_alert ON alert_notes (alert_id)",
        """CREATE TABLE audit_log (
            id {AUTO_ID},
            tenant VARCHAR(64) NOT NULL,
            alert_id VARCHAR(64),
            actor VARCHAR(64) NOT NULL,
            address VARCHAR(64),
            at VARCHAR(40) NOT NULL,
            action VARCHAR(32) NOT NULL,
            before_state TEXT,
            after_state TEXT
        )""",
        "CREATE INDEX audit_by_tenant ON audit_log (tenant, at)",
        "CREATE INDEX audit_by_alert ON audit_log (alert_id)",
        """CREATE TABLE notification_outbox (
            id {AUTO_ID},
            tenant VARCHAR(64) NOT NULL,
            alert_id VARCHAR(64),
            event VARCHAR(32) NOT NULL,
            channel VARCHAR(128) NOT NULL,
            payload TEXT NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            state VARCHAR(16) NOT NULL,
            attempts INTEGER NOT NULL,
            last_error TEXT,
            sent_at VARCHAR(40)
        )""",
        "CREATE INDEX outbox_by_state ON notification_outbox (state, id)",
    ]),
    (2, "users, tenant scopes, sessions and API tokens", [
        """CREATE TABLE users (
            login VARCHAR(64) PRIMARY KEY,
            display_name TEXT NOT NULL,
            email TEXT NOT NULL,
            role VARCHAR(32) NOT NULL,
            status VARCHAR(16) NOT NULL,
            password_hash TEXT,
            totp_secret TEXT NOT NULL,
            totp_last_step BIGINT,
            activation_hash VARCHAR(64),
            activation_expires VARCHAR(40),
            created_at VARCHAR(40) NOT NULL,
            created_by VARCHAR(64) NOT NULL,
            activated_at VARCHAR(40),
            last_login_at VARCHAR(40),
            disabled_at VARCHAR(40),
            failed_logins INTEGER NOT NULL,
            locked_until VARCHAR(40)
        )""",
        """CREATE TABLE user_tenants (
            login VARCHAR(64) NOT NULL REFERENCES users (login),
            tenant VARCHAR(64) NOT NULL,
            PRIMARY KEY (login, tenant)
        )""",
        """CREATE TABLE auth_tokens (
            token_hash VARCHAR(64) PRIMARY KEY,
            login VARCHAR(64) NOT NULL REFERENCES users (login),
            kind VARCHAR(16) NOT NULL,
            name TEXT,
            tenants TEXT NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            expires_at VARCHAR(40) NOT NULL,
            last_used_at VARCHAR(40),
            revoked_at VARCHAR(40)
        )""",
        "CREATE INDEX auth_tokens_by_login ON auth_tokens (login)",
    ]),
    (3, "token ids and lineage, lockout per (account, address), activation attempts", [
        # A token's public id: the first 16 hex digits of its hash (never the token itself).
        "ALTER TABLE auth_tokens ADD COLUMN token_id VARCHAR(32)",
        "UPDATE auth_tokens SET token_id = substr(token_hash, 1, 16)",
        "CREATE UNIQUE INDEX auth_tokens_by_id ON auth_tokens (token_id)",
        # The token that made this one (null for a session): revoking a parent revokes it.
        "ALTER TABLE auth_tokens ADD COLUMN parent_id VARCHAR(32)",
        "CREATE INDEX auth_tokens_by_parent ON auth_tokens (parent_id)",
        "ALTER TABLE auth_tokens ADD COLUMN created_from VARCHAR(64)",
        """CREATE TABLE login_failures (
            login VARCHAR(64) NOT NULL,
            address VARCHAR(64) NOT NULL,
            failures INTEGER NOT NULL,
            last_failure_at VARCHAR(40) NOT NULL,
            locked_until VARCHAR(40),
            PRIMARY KEY (login, address)
        )""",
        # The account-wide lock (users.locked_until) is no longer set or read.
        "UPDATE users SET failed_logins = 0, locked_until = NULL",
        "ALTER TABLE users ADD COLUMN activation_failures INTEGER NOT NULL DEFAULT 0",
    ]),
    (4, "questions to the client (validation, action, decision) and the client's answers", [
        """CREATE TABLE client_requests (
            id {AUTO_ID},
            alert_id VARCHAR(64) NOT NULL REFERENCES alerts (id),
            tenant VARCHAR(64) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            question TEXT NOT NULL,
            asked_by VARCHAR(64) NOT NULL,
            asked_at VARCHAR(40) NOT NULL,
            answer TEXT,
            answered_by VARCHAR(64),
            answered_at VARCHAR(40)
        )""",
        "CREATE INDEX client_requests_by_alert ON client_requests (alert_id)",
        "CREATE INDEX alerts_by_queue ON alerts (tenant, status, ack_due, resolve_due)",
    ]),
    (5, "user-saved dashboards, one tenant each", [
        """CREATE TABLE user_dashboards (
            id VARCHAR(64) PRIMARY KEY,
            tenant VARCHAR(64) NOT NULL,
            owner VARCHAR(64) NOT NULL,
            title TEXT NOT NULL,
            definition TEXT NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            updated_at VARCHAR(40) NOT NULL
        )""",
        "CREATE INDEX user_dashboards_by_tenant ON user_dashboards (tenant, title)",
    ]),
    (6, "indexes for the alert queue: its default order and its usual filters", [
        # 100,000 alerts: the newest page across tenants 300 ms -> 13 ms, one tenant's new
        # high alerts 520 ms -> 2 ms (benchmarks/bench_dashboards.py).
        "CREATE INDEX alerts_by_created ON alerts (created_at, id)",
        "CREATE INDEX alerts_by_tenant_state ON alerts (tenant, status, severity, created_at)",
    ]),
    (7, "integration plan: the sources planned per tenant (the integration map)", [
        """CREATE TABLE integration_plan (
            id VARCHAR(64) PRIMARY KEY,
            tenant VARCHAR(64) NOT NULL,
            category VARCHAR(128) NOT NULL,
            product TEXT NOT NULL,
            target_date VARCHAR(10),
            owner TEXT NOT NULL,
            status VARCHAR(16) NOT NULL,
            notes TEXT NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            created_by VARCHAR(64) NOT NULL,
            updated_at VARCHAR(40) NOT NULL,
            updated_by VARCHAR(64) NOT NULL
        )""",
        "CREATE INDEX integration_plan_by_tenant ON integration_plan (tenant, category)",
    ]),
    (8, "reports: weekly posture and closed-incident reports, each mailed once", [
        # One row per report to mail: a week of a tenant (subject: the week's Monday) or an
        # alert resolved as true positive (subject: its id). The unique key makes a report
        # mailed once, across restarts; `state` moves pending -> queued (its mail in the
        # notification outbox, `outbox_id`) or unsent (no recipients, no email notifier).
        """CREATE TABLE reports (
            id {AUTO_ID},
            tenant VARCHAR(64) NOT NULL,
            kind VARCHAR(32) NOT NULL,
            subject VARCHAR(64) NOT NULL,
            requested_at VARCHAR(40) NOT NULL,
            state VARCHAR(16) NOT NULL,
            recipients TEXT,
            outbox_id BIGINT,
            generated_at VARCHAR(40),
            error TEXT
        )""",
        "CREATE UNIQUE INDEX reports_by_subject ON reports (tenant, kind, subject)",
        "CREATE INDEX reports_by_state ON reports (state, id)",
    ]),
    (9, "users: who disabled an account and why, who enabled it again and when", [
        # Shown beside the status in the administration pages and `vigil users list`; the
        # audit log keeps every change, these the latest of each.
        "ALTER TABLE users ADD COLUMN disabled_by VARCHAR(64)",
        "ALTER TABLE users ADD COLUMN disabled_reason TEXT",
        "ALTER TABLE users ADD COLUMN enabled_at VARCHAR(40)",
        "ALTER TABLE users ADD COLUMN enabled_by VARCHAR(64)",
    ]),
]
