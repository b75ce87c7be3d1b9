"""Realistic webhook payloads for bench/insights_query.py, as SQL expressions generated inside
the database (SQLite `json_object`, PostgreSQL `jsonb_build_object`).

Twenty event types from five sources, shaped as Stripe events (`data.object` with amounts in
cents, `billing_details.address.country`), GitHub webhooks (`repository.full_name`,
`sender.login`, `pusher.email`), Shopify webhooks (`total_price` as a string,
`shipping_address.country_code`, `line_items[]`), Alertmanager notifications (`status`,
`commonLabels.severity`, `alerts[]`) and a monitoring source (numeric `duration_ms` and a
`host`). Every value is derived from the row number `i` through two multiplicative hashes `h`
and `g`, so a build is reproducible and the two backends hold the same payloads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    obj: str
    arr: str
    true: str
    false: str
    iso: str
    """ISO 8601 UTC text of the row's receipt time `ms`."""


SQLITE = Dialect(
    "json_object",
    "json_array",
    "json('true')",
    "json('false')",
    "strftime('%Y-%m-%dT%H:%M:%SZ', ms / 1000, 'unixepoch')",
)
POSTGRES = Dialect(
    "jsonb_build_object",
    "jsonb_build_array",
    "true",
    "false",
    "to_char(to_timestamp(ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
)
H = "((i * 2654435761) % 4294967296)"
G = "((i * 1103515245 + 12345) % 2147483648)"

CURRENCIES = ["usd"] * 6 + ["eur"] * 3 + ["gbp"] * 2 + ["cad", "aud", "jpy", "chf"]
COUNTRIES = ["US"] * 5 + ["DE", "DE", "FR", "GB", "GB", "CA", "NL", "ES", "IT", "JP", "BR", "AU"]
HOSTS = [
    f"{role}-{n}.{zone}.internal"
    for role in ("api", "web", "worker")
    for n in (1, 2)
    for zone in ("eu-west-1", "us-east-1")
]
REPOS = ["acme/api", "acme/web", "acme/infra", "acme/mobile", "acme/docs", "acme/billing"]
ALERTS = [
    "HighLatency",
    "HighErrorRate",
    "DiskFilling",
    "InstanceDown",
    "CertExpiring",
    "QueueBacklog",
    "OOMKilled",
    "ReplicationLag",
]
PREFIXES = {"charge": "ch_", "payment_intent": "pi_", "invoice": "in_"}
SEVERITIES = ["warning"] * 5 + ["critical"] * 2 + ["info"] * 3


def q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def pick(values: list[str], field: str) -> str:
    """One of `values`, chosen by a hash field such as `(h >> 7)`."""
    whens = " ".join(f"WHEN {n} THEN {q(v)}" for n, v in enumerate(values))
    return f"(CASE {field} % {len(values)} {whens} END)"


def num(low: int, span: int, field: str) -> str:
    return f"({low} + {field} % {span})"


def cat(*parts: str) -> str:
    """Text made of SQL parts (each bracketed: `||` binds tighter than `%` in SQLite only)."""
    return "(" + " || ".join(f"({p})" for p in parts) + ")"


def email(field: str) -> str:
    return cat("'user'", f"{field} % 60000", "'@example.com'")


class Shapes:
    """Builders of each source's payloads in one SQL dialect."""

    def __init__(self, d: Dialect) -> None:
        self.d = d

    def o(self, **fields: str) -> str:
        return f"{self.d.obj}(" + ", ".join(f"{q(k)}, {v}" for k, v in fields.items()) + ")"

    def a(self, *items: str) -> str:
        return f"{self.d.arr}(" + ", ".join(items) + ")"

    def stripe(self, type_: str) -> str:
        obj = type_.split(".")[0]
        amount = num(500, 49_500, f"({H} >> 6)")
        country = pick(COUNTRIES, f"({G} >> 9)")
        common = {
            "id": cat(q(PREFIXES[obj]), H),
            "object": q(obj),
            "currency": pick(CURRENCIES, f"({G} >> 5)"),
            "customer": cat("'cus_'", f"({G} >> 8) % 60000"),
            "livemode": self.d.false,
            "created": "ms / 1000",
            "metadata": self.o(order_id="'ord_' || i"),
        }
        failed = type_.endswith("failed")
        if obj == "invoice":
            body = self.o(
                **common,
                amount_due=amount,
                amount_paid="0" if failed else amount,
                status=q("open" if failed else "paid"),
                customer_email=email(f"({G} >> 8)"),
                billing_reason="'subscription_cycle'",
                lines=self.o(
                    object="'list'",
                    total_count="1",
                    data=self.a(
                        self.o(id="'il_' || i", amount=amount, description="'Pro plan x 1'")
                    ),
                ),
            )
        else:
            body = self.o(
                **common,
                amount=amount,
                amount_captured="0" if failed else amount,
                paid=self.d.false if failed else self.d.true,
                status=q("failed" if failed else "succeeded"),
                failure_code="'card_declined'" if failed else "NULL",
                billing_details=self.o(
                    email=email(f"({G} >> 8)"),
                    name=cat("'Customer '", f"({G} >> 8) % 60000"),
                    address=self.o(
                        country=country,
                        postal_code=cat("''", f"({H} >> 11) % 90000"),
                        city="NULL",
                        line1="NULL",
                    ),
                ),
                payment_method_details=self.o(
                    type="'card'",
                    card=self.o(
                        brand=pick(["visa", "mastercard", "amex"], f"({H} >> 13)"),
                        last4=cat("''", f"1000 + ({H} >> 9) % 9000"),
                        country=country,
                    ),
                ),
            )
        return self.o(
            id=f"'evt_' || {G}",
            object="'event'",
            api_version="'2024-06-20'",
            created="ms / 1000",
            livemode=self.d.false,
            pending_webhooks="1",
            request=self.o(id=f"'req_' || {H}", idempotency_key="NULL"),
            type=q(type_),
            data=self.o(object=body),
        )

    def github(self, event: str) -> str:
        login = cat("'dev'", f"({G} >> 7) % 400")
        repo_name = pick(REPOS, f"({H} >> 8)")
        repo = self.o(
            id=f"1000 + ({H} >> 8) % 6",
            full_name=repo_name,
            private=self.d.true,
            default_branch="'main'",
            owner=self.o(login="'acme'", type="'Organization'"),
        )
        sender = self.o(login=login, id=f"({G} >> 7) % 400", type="'User'")
        if event == "push":
            commit = self.o(
                id=f"printf('%x', {G})" if self.d is SQLITE else f"to_hex({G})",
                message="'Fix flaky test'",
                timestamp=self.d.iso,
                author=self.o(name=login, email=email(f"({G} >> 7)")),
            )
            return self.o(
                ref="'refs/heads/main'",
                before=f"'' || {H}",
                after=f"'' || {G}",
                repository=repo,
                pusher=self.o(name=login, email=email(f"({G} >> 7)")),
                sender=sender,
                created=self.d.false,
                forced=self.d.false,
                commits=self.a(commit),
                head_commit=commit,
            )
        number = f"({H} >> 10) % 5000"
        if event == "pull_request":
            item = self.o(
                number=number,
                state="'open'",
                title="'Add retries'",
                draft=self.d.false,
                user=self.o(login=login),
                additions=num(1, 800, f"({H} >> 12)"),
                deletions=num(0, 300, f"({G} >> 12)"),
                changed_files=num(1, 40, f"({H} >> 15)"),
            )
            action = pick(["opened", "synchronize", "closed", "reopened"], f"({G} >> 11)")
            return self.o(
                action=action, number=number, pull_request=item, repository=repo, sender=sender
            )
        if event == "issues":
            item = self.o(
                number=number,
                title="'Crash on start'",
                state="'open'",
                labels=self.a(self.o(name=pick(["bug", "feature", "question"], f"({G} >> 13)"))),
                user=self.o(login=login),
            )
            return self.o(action="'opened'", issue=item, repository=repo, sender=sender)
        run = self.o(
            id=f"{H}",
            name="'CI'",
            status="'completed'",
            run_attempt="1",
            conclusion=pick(["success"] * 4 + ["failure"], f"({G} >> 14)"),
            head_branch="'main'",
            run_started_at=self.d.iso,
        )
        return self.o(action="'completed'", workflow_run=run, repository=repo, sender=sender)

    def shopify(self, topic: str) -> str:
        cents = f"({H} >> 6) % 50000"
        price = cat(f"{cents} / 100", "'.'", f"10 + ({H} >> 17) % 90")
        customer = self.o(
            id=f"7000000 + ({G} >> 8) % 60000",
            email=email(f"({G} >> 8)"),
            first_name="'Alex'",
            verified_email=self.d.true,
            orders_count=num(1, 30, f"({H} >> 14)"),
        )
        if topic == "customers/create":
            return customer
        country = pick(COUNTRIES, f"({G} >> 9)")
        line = self.o(
            id="'' || i",
            title=pick(["T-shirt", "Mug", "Hoodie", "Sticker pack"], f"({H} >> 12)"),
            sku=cat("'SKU-'", f"({H} >> 12) % 4"),
            quantity=num(1, 3, f"({G} >> 16)"),
            price=price,
        )
        return self.o(
            id="5000000000 + i",
            name="'#' || (1000 + i % 90000)",
            email=email(f"({G} >> 8)"),
            created_at=self.d.iso,
            currency=pick([c.upper() for c in CURRENCIES], f"({G} >> 5)"),
            total_price=price,
            subtotal_price=price,
            total_tax="'0.00'",
            financial_status=q("refunded" if topic == "refunds/create" else "paid"),
            customer=customer,
            line_items=self.a(line),
            shipping_address=self.o(
                country_code=country, city="'Springfield'", zip=cat("''", f"({H} >> 11) % 90000")
            ),
        )

    def alertmanager(self, type_: str) -> str:
        status = type_.removeprefix("alert.")
        name = pick(ALERTS, f"({H} >> 7)")
        labels = self.o(
            alertname=name,
            severity=pick(SEVERITIES, f"({G} >> 10)"),
            instance=pick(HOSTS, f"({H} >> 12)"),
            job="'node'",
        )
        alert = self.o(
            status=q(status),
            labels=labels,
            annotations=self.o(summary="'Threshold crossed'"),
            startsAt=self.d.iso,
            endsAt="'0001-01-01T00:00:00Z'",
            generatorURL="'http://prometheus:9090/graph'",
            fingerprint=f"'' || {H}",
        )
        return self.o(
            version="'4'",
            groupKey=f"'{{}}:{{alertname=\"' || {name} || '\"}}'",
            truncatedAlerts="0",
            status=q(status),
            receiver="'oncall'",
            groupLabels=self.o(alertname=name),
            commonLabels=labels,
            commonAnnotations=self.o(summary="'Threshold crossed'"),
            externalURL="'http://alertmanager:9093'",
            alerts=self.a(alert),
        )

    def monitoring(self, kind: str) -> str:
        host = pick(HOSTS, f"({H} >> 7)")
        # A long-tailed latency: the product of two uniform draws, in milliseconds.
        duration = f"(({H} >> 9) % 1000) * (({G} >> 9) % 1000) / 1000.0 + 2"
        if kind == "http.request":
            return self.o(
                host=host,
                duration_ms=duration,
                method=pick(["GET"] * 4 + ["POST"], f"({G} >> 13)"),
                route=pick(["/api/orders", "/api/cart", "/login", "/"], f"({H} >> 14)"),
                status=pick(["200"] * 17 + ["404", "500", "503"], f"({G} >> 15)"),
            )
        if kind == "job.finished":
            return self.o(
                host=host,
                duration_ms=f"({duration}) * 40",
                queue="'default'",
                job=pick(["send_email", "sync_stock", "resize_image"], f"({G} >> 12)"),
                status=pick(["ok"] * 9 + ["failed"], f"({G} >> 15)"),
            )
        if kind == "page.view":
            return self.o(
                url=pick(["/", "/pricing", "/docs", "/blog"], f"({H} >> 8)"),
                referrer="'https://www.google.com/'",
                user=self.o(
                    email=email(f"({G} >> 8)"), plan=pick(["free", "pro", "team"], f"({H} >> 13)")
                ),
            )
        if kind == "signup":
            return self.o(
                email=email(f"({G} >> 8)"),
                plan=pick(["free", "pro"], f"({H} >> 13)"),
                utm=self.o(source=pick(["google", "newsletter", "twitter"], f"({G} >> 14)")),
            )
        return self.o(host=host, status="'up'", uptime_s=f"({H} >> 5) % 2000000")


# (type, source, weight out of 40): the mix of a small online shop's event stream.
TYPES = [
    ("charge.succeeded", "stripe", 3), ("charge.failed", "stripe", 1),
    ("payment_intent.succeeded", "stripe", 2), ("invoice.paid", "stripe", 2),
    ("invoice.payment_failed", "stripe", 1),
    ("push", "github", 3), ("pull_request", "github", 2), ("issues", "github", 1),
    ("workflow_run", "github", 2),
    ("orders/create", "shopify", 3), ("orders/paid", "shopify", 2),
    ("refunds/create", "shopify", 1), ("customers/create", "shopify", 1),
    ("alert.firing", "alertmanager", 2), ("alert.resolved", "alertmanager", 2),
    ("http.request", "monitoring", 6), ("job.finished", "monitoring", 2),
    ("page.view", "monitoring", 2), ("signup", "monitoring", 1), ("heartbeat", "monitoring", 1),
]  # fmt: skip
USER_AGENTS = {
    "stripe": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "github": "GitHub-Hookshot/7c1b2a9",
    "shopify": "Shopify-Captain-Hook",
    "alertmanager": "Alertmanager/0.27.0",
    "monitoring": "vector/0.39.0",
}


def columns(dialect: Dialect) -> dict[str, str]:
    """SQL for `type`, `source_id`, `properties` and `context` of row `i` (its type chosen by
    weight from the hash, so types do not follow the row number)."""
    assert sum(w for _, _, w in TYPES) == 40
    slots = [n for n, (_, _, w) in enumerate(TYPES) for _ in range(w)]
    slot = f"(CASE ({H} >> 20) % 40 " + " ".join(f"WHEN {k} THEN {t}" for k, t in enumerate(slots))
    slot += " END)"
    shapes = Shapes(dialect)

    def by_type(value: Callable[[int], str]) -> str:
        return "CASE t " + " ".join(f"WHEN {n} THEN {value(n)}" for n in range(len(TYPES))) + " END"

    return {
        "t": slot,
        "type": by_type(lambda n: q(TYPES[n][0])),
        "source_id": by_type(lambda n: q(TYPES[n][1])),
        "properties": by_type(lambda n: getattr(shapes, TYPES[n][1])(TYPES[n][0])),
        "context": by_type(
            lambda n: shapes.o(
                method="'POST'",
                ip="'203.0.113.' || (i % 250)",
                user_agent=q(USER_AGENTS[TYPES[n][1]]),
            )
        ),
    }
