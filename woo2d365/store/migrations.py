"""Versioned schema migrations, shared by both backends.

Each migration is a list of statements written once with placeholders the dialect fills in
(``{id}``, ``{ts}``, ``{longtext}``, ``{opts}``). Statements are idempotent (``IF NOT EXISTS``)
because MySQL commits DDL at once: a migration interrupted half-way can simply run again.
Indexes are declared separately so each dialect can create them only when missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Index:
    """An index the migration creates when it does not exist yet."""

    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class Column:
    """A column the migration adds to an existing table when it is missing."""

    table: str
    name: str
    ddl: str  # type and constraints, with the dialect placeholders


@dataclass(frozen=True)
class Migration:
    """One schema version."""

    version: int
    description: str
    tables: tuple[str, ...]
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    columns: tuple[Column, ...] = field(default_factory=tuple)
    data: tuple[str, ...] = ()  # idempotent statements run after the columns are added


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="orders, events, runs, SKU map, key/value, run lock, Dynamics caches",
        tables=(
            """CREATE TABLE IF NOT EXISTS orders (
                woo_id BIGINT NOT NULL PRIMARY KEY,
                number VARCHAR(64) NOT NULL,
                state VARCHAR(16) NOT NULL,
                shop_status VARCHAR(32) NOT NULL,
                shop_modified_at {ts} NOT NULL,
                reason TEXT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                d365_id VARCHAR(64) NULL,
                d365_number VARCHAR(64) NULL,
                external_number VARCHAR(64) NULL,
                currency VARCHAR(8) NOT NULL,
                total VARCHAR(32) NOT NULL,
                claimed_by VARCHAR(128) NULL,
                claimed_at {ts} NULL,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                pushed_at {ts} NULL,
                write_back_pending INTEGER NOT NULL DEFAULT 0,
                raw_json {longtext} NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS events (
                id {id},
                woo_id BIGINT NULL,
                run_id BIGINT NULL,
                at {ts} NOT NULL,
                step VARCHAR(32) NOT NULL,
                level VARCHAR(16) NOT NULL,
                message TEXT NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS runs (
                id {id},
                command VARCHAR(32) NOT NULL,
                worker VARCHAR(128) NOT NULL,
                started_at {ts} NOT NULL,
                finished_at {ts} NULL,
                outcome VARCHAR(16) NULL,
                counts_json TEXT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS sku_map (
                sku VARCHAR(191) NOT NULL PRIMARY KEY,
                item_number VARCHAR(20) NOT NULL,
                note VARCHAR(255) NOT NULL,
                updated_by VARCHAR(128) NOT NULL,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS held_skus (
                woo_id BIGINT NOT NULL,
                sku VARCHAR(191) NOT NULL,
                PRIMARY KEY (woo_id, sku)
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS kv (
                name VARCHAR(64) NOT NULL PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at {ts} NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS locks (
                name VARCHAR(64) NOT NULL PRIMARY KEY,
                holder VARCHAR(128) NOT NULL,
                acquired_at {ts} NOT NULL,
                expires_at {ts} NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS bc_items (
                number VARCHAR(20) NOT NULL PRIMARY KEY,
                id VARCHAR(64) NOT NULL,
                display_name VARCHAR(255) NOT NULL,
                blocked INTEGER NOT NULL,
                last_modified VARCHAR(40) NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS bc_customers (
                email VARCHAR(191) NOT NULL PRIMARY KEY,
                number VARCHAR(20) NOT NULL,
                id VARCHAR(64) NOT NULL,
                updated_at {ts} NOT NULL
            ) {opts}""",
        ),
        indexes=(
            Index("ix_orders_state_updated", "orders", ("state", "updated_at")),
            Index("ix_orders_updated", "orders", ("updated_at",)),
            Index("ix_orders_external", "orders", ("external_number",)),
            Index("ix_events_order", "events", ("woo_id", "id")),
            Index("ix_events_run", "events", ("run_id", "id")),
            Index("ix_events_at", "events", ("at",)),
            Index("ix_runs_command", "runs", ("command", "id")),
            Index("ix_runs_command_outcome", "runs", ("command", "outcome", "id")),
            Index("ix_held_skus_sku", "held_skus", ("sku",)),
        ),
    ),
)

MIGRATIONS += (
    Migration(
        version=2,
        description="alert conditions: what was sent when, for de-duplication and recovery",
        tables=(
            """CREATE TABLE IF NOT EXISTS alerts (
                alert_key VARCHAR(191) NOT NULL PRIMARY KEY,
                kind VARCHAR(32) NOT NULL,
                message TEXT NOT NULL,
                active INTEGER NOT NULL,
                first_seen {ts} NOT NULL,
                last_sent {ts} NULL
            ) {opts}""",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        version=3,
        description="claim fencing token and the time of the last create sent",
        tables=(),
        columns=(
            Column("orders", "claim_token", "VARCHAR(64) NULL"),
            Column("orders", "last_sent_at", "{ts} NULL"),
        ),
    ),
)

MIGRATIONS += (
    Migration(
        version=4,
        description="an order changed in the shop after it was pushed, until acknowledged",
        tables=(),
        columns=(Column("orders", "changed_at", "{ts} NULL"),),
        indexes=(Index("ix_orders_changed", "orders", ("changed_at",)),),
    ),
)

MIGRATIONS += (
    Migration(
        version=5,
        description="when each order entered its current state, apart from its last update",
        tables=(),
        columns=(Column("orders", "state_since", "{ts} NULL"),),
        data=("UPDATE orders SET state_since = updated_at WHERE state_since IS NULL",),
        indexes=(Index("ix_orders_state_since", "orders", ("state", "state_since")),),
    ),
)

# -- 6: shipments and invoices reported to the shop (woo2d365 shipments) ----------------------
MIGRATIONS += (
    Migration(
        version=6,
        description="ledgers of Dynamics shipments and invoices reported to the shop",
        tables=(
            """CREATE TABLE IF NOT EXISTS shipment_reports (
                shipment_id VARCHAR(64) NOT NULL PRIMARY KEY,
                woo_id BIGINT NOT NULL,
                number VARCHAR(20) NOT NULL,
                posted_on VARCHAR(10) NOT NULL,
                lines_json TEXT NOT NULL,
                agent VARCHAR(20) NOT NULL,
                tracking VARCHAR(64) NOT NULL,
                note_state VARCHAR(16) NOT NULL,
                tracking_noted VARCHAR(64) NOT NULL,
                tracking_claim VARCHAR(64) NOT NULL,
                modified VARCHAR(40) NOT NULL,
                updated_at {ts} NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS invoice_records (
                invoice_id VARCHAR(64) NOT NULL PRIMARY KEY,
                woo_id BIGINT NOT NULL,
                number VARCHAR(20) NOT NULL,
                status VARCHAR(20) NOT NULL,
                currency VARCHAR(10) NOT NULL,
                total_including_tax VARCHAR(32) NOT NULL,
                total_excluding_tax VARCHAR(32) NOT NULL,
                remaining VARCHAR(32) NOT NULL,
                posted_on VARCHAR(10) NOT NULL,
                note_state VARCHAR(16) NOT NULL,
                meta_status VARCHAR(20) NOT NULL,
                modified VARCHAR(40) NOT NULL,
                updated_at {ts} NOT NULL
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS fulfilments (
                woo_id BIGINT NOT NULL PRIMARY KEY,
                shipped VARCHAR(16) NOT NULL,
                complete_state VARCHAR(16) NOT NULL,
                status_set VARCHAR(32) NOT NULL,
                updated_at {ts} NOT NULL
            ) {opts}""",
        ),
        indexes=(
            Index("ix_shipment_reports_order", "shipment_reports", ("woo_id",)),
            Index("ix_shipment_reports_state", "shipment_reports", ("note_state",)),
            Index("ix_invoice_records_order", "invoice_records", ("woo_id",)),
            Index("ix_fulfilments_shipped", "fulfilments", ("shipped",)),
            Index("ix_orders_d365_number", "orders", ("d365_number",)),
            Index("ix_orders_d365_id", "orders", ("d365_id",)),
        ),
    ),
)

MIGRATIONS += (
    Migration(
        version=7,
        description="shop refunds and their credit memos (refund states as order states)",
        tables=(
            """CREATE TABLE IF NOT EXISTS refunds (
                refund_id BIGINT NOT NULL PRIMARY KEY,
                woo_id BIGINT NOT NULL,
                state VARCHAR(16) NOT NULL,
                reason TEXT NULL,
                amount VARCHAR(32) NOT NULL,
                shop_created_at {ts} NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                external_number VARCHAR(64) NULL,
                d365_id VARCHAR(64) NULL,
                d365_number VARCHAR(64) NULL,
                claimed_by VARCHAR(128) NULL,
                claimed_at {ts} NULL,
                claim_token VARCHAR(64) NULL,
                last_sent_at {ts} NULL,
                post_pending INTEGER NOT NULL DEFAULT 0,
                note_pending INTEGER NOT NULL DEFAULT 0,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                pushed_at {ts} NULL,
                raw_json {longtext} NOT NULL
            ) {opts}""",
        ),
        indexes=(
            Index("ix_refunds_state_updated", "refunds", ("state", "updated_at")),
            Index("ix_refunds_order", "refunds", ("woo_id", "refund_id")),
        ),
    ),
)

# -- stock (woo2d365 stock): the shop's products by SKU, and what was written -----------------
MIGRATIONS += (
    Migration(
        version=8,
        description="stock: shop products and variations by SKU, the stock written per SKU",
        tables=(
            """CREATE TABLE IF NOT EXISTS stock_targets (
                product_id BIGINT NOT NULL,
                variation_id BIGINT NOT NULL,
                sku VARCHAR(191) NOT NULL,
                manage_stock VARCHAR(8) NOT NULL,
                stock_quantity BIGINT NULL,
                date_modified VARCHAR(32) NOT NULL,
                PRIMARY KEY (product_id, variation_id)
            ) {opts}""",
            """CREATE TABLE IF NOT EXISTS stock_written (
                sku VARCHAR(191) NOT NULL PRIMARY KEY,
                quantity BIGINT NOT NULL,
                written_at {ts} NOT NULL
            ) {opts}""",
        ),
        indexes=(Index("ix_stock_targets_sku", "stock_targets", ("sku",)),),
    ),
)

MIGRATIONS += (
    Migration(
        version=9,
        description="why a mirrored item is blocked (F&O: stopped for sales, a product master)",
        tables=(),
        columns=(Column("bc_items", "blocked_reason", "VARCHAR(100) NOT NULL DEFAULT ''"),),
    ),
)

MIGRATIONS += (
    Migration(
        version=10,
        description="orders by state in id order (the pages validate and push read)",
        tables=(),
        # Without it each page of order_ids_after sorted every order in the state: a backlog's
        # pages cost time growing with the backlog (docs/architecture.md, "Memory").
        indexes=(Index("ix_orders_state_woo", "orders", ("state", "woo_id")),),
    ),
)

LATEST_VERSION = max(migration.version for migration in MIGRATIONS)
