-- The replicated alerts and their aggregates, for one ClickHouse node. `{db}` is replaced by the
-- configured database name; statements are separated by lines holding only `;`.
--
-- Every change arrives as signed rows in alert_changes: an insert as +1 with the new state, a
-- delete as -1 with the old state, an update as both. The views sum `sign`-weighted values, so
-- an update cancels the row's old contribution and no aggregate ever counts a row twice.
-- No table is partitioned: a batch of history spanning decades would otherwise write a part per
-- partition into every table, which made replicating such a batch several times slower.
-- Each table keeps a deduplication window so that a batch replayed after a crash, sent with the
-- same insert_deduplication_token, lands once in the table and once in every view.

CREATE DATABASE IF NOT EXISTS {db}
;
CREATE TABLE IF NOT EXISTS {db}.alert_changes
(
    alert_pk           Int64,
    alert_id           String,
    version            UInt32,
    sign               Int8,
    event_id           Int64,
    company_key        String,
    company_name       String,
    violation_type     LowCardinality(String),
    severity           LowCardinality(String),
    status             LowCardinality(String),
    region             LowCardinality(String),
    amount             Decimal(15, 2),
    detected_at        DateTime64(3, 'UTC'),
    resolved_at        Nullable(DateTime64(3, 'UTC')),
    resolution_seconds Int64
)
ENGINE = VersionedCollapsingMergeTree(sign, version)
ORDER BY alert_pk
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE TABLE IF NOT EXISTS {db}.stats_hourly
(
    hour               DateTime('UTC'),
    severity           LowCardinality(String),
    status             LowCardinality(String),
    region             LowCardinality(String),
    violation_type     LowCardinality(String),
    alerts             Int64,
    amount             Decimal(38, 2),
    resolved           Int64,
    resolution_seconds Int64
)
ENGINE = SummingMergeTree
ORDER BY (hour, severity, status, region, violation_type)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.stats_hourly_mv TO {db}.stats_hourly AS
SELECT
    toStartOfHour(detected_at) AS hour,
    severity,
    status,
    region,
    violation_type,
    sum(sign) AS alerts,
    sum(sign * amount) AS amount,
    sum(sign * (resolved_at IS NOT NULL)) AS resolved,
    sum(sign * resolution_seconds) AS resolution_seconds
FROM {db}.alert_changes
GROUP BY hour, severity, status, region, violation_type
;
CREATE TABLE IF NOT EXISTS {db}.company_hourly
(
    company_key        String,
    hour               DateTime('UTC'),
    severity           LowCardinality(String),
    status             LowCardinality(String),
    region             LowCardinality(String),
    alerts             Int64,
    amount             Decimal(38, 2)
)
ENGINE = SummingMergeTree
ORDER BY (company_key, hour, severity, status, region)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.company_hourly_mv TO {db}.company_hourly AS
SELECT
    company_key,
    toStartOfHour(detected_at) AS hour,
    severity,
    status,
    region,
    sum(sign) AS alerts,
    sum(sign * amount) AS amount
FROM {db}.alert_changes
GROUP BY company_key, hour, severity, status, region
;
-- Per UTC day, severity and status, for statistics and trends over whole UTC days without
-- other filters (the default window): a few rows a day however many alerts.
CREATE TABLE IF NOT EXISTS {db}.stats_daily
(
    day                Date,
    severity           LowCardinality(String),
    status             LowCardinality(String),
    alerts             Int64,
    amount             Decimal(38, 2),
    resolved           Int64,
    resolution_seconds Int64
)
ENGINE = SummingMergeTree
ORDER BY (day, severity, status)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.stats_daily_mv TO {db}.stats_daily AS
SELECT
    toDate(detected_at, 'UTC') AS day,
    severity,
    status,
    sum(sign) AS alerts,
    sum(sign * amount) AS amount,
    sum(sign * (resolved_at IS NOT NULL)) AS resolved,
    sum(sign * resolution_seconds) AS resolution_seconds
FROM {db}.alert_changes
GROUP BY day, severity, status
;
-- Per company and UTC day, for the ranking over whole UTC days (the default window): a few rows
-- per company a day instead of one per hour, severity, status and region.
CREATE TABLE IF NOT EXISTS {db}.company_daily
(
    day                Date,
    company_key        String,
    severity           LowCardinality(String),
    alerts             Int64,
    amount             Decimal(38, 2)
)
ENGINE = SummingMergeTree
ORDER BY (day, company_key, severity)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.company_daily_mv TO {db}.company_daily AS
SELECT
    toDate(detected_at, 'UTC') AS day,
    company_key,
    severity,
    sum(sign) AS alerts,
    sum(sign * amount) AS amount
FROM {db}.alert_changes
GROUP BY day, company_key, severity
;
-- How often each spelling of a company is used, so that the most frequent one is shown.
CREATE TABLE IF NOT EXISTS {db}.company_names
(
    company_key        String,
    company_name       String,
    alerts             Int64
)
ENGINE = SummingMergeTree
ORDER BY (company_key, company_name)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.company_names_mv TO {db}.company_names AS
SELECT company_key, company_name, sum(sign) AS alerts
FROM {db}.alert_changes
GROUP BY company_key, company_name
;
-- One row per applied replication batch: what it covered and when it landed.
CREATE TABLE IF NOT EXISTS {db}.replication_batches
(
    token              String,
    upper_tx           UInt64,
    upper_event        Int64,
    last_event_id      Int64,
    events             UInt32,
    rows               UInt32,
    last_change_at     Nullable(DateTime64(3, 'UTC')),
    applied_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY token
