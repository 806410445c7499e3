-- The cluster form of clickhouse/schema.sql: the same tables and views, sharded and replicated.
-- Used instead of the single-node schema when MSD_CLICKHOUSE_CLUSTER names a cluster. `{db}` and
-- `{cluster}` are filled in by the service (olap/store.py); `{shard}` and `{replica}` are macros
-- each node fills in from its own configuration (clickhouse/cluster/macros/). Statements are
-- separated by lines holding only `;`.
--
-- Every table of the single-node schema becomes two: `<name>_local`, a Replicated table on each
-- shard holding that shard's rows, and `<name>`, a Distributed table over all shards with the
-- single-node name, so the replicator and every query use the same names on one node and on a
-- cluster.
--
-- alert_changes is sharded by alert_pk: every signed row of one alert lands on the same shard, so
-- the -1 row of a change meets the +1 row it cancels in that shard's parts. Collapsing (and any
-- read of one alert's newest state) is correct only within a shard, so this is required.
-- The materialized views live on each shard over the shard's local alert_changes: an insert
-- reaching a shard fills that shard's aggregates. A replica that fetches a part from another
-- replica does not run the views again; the aggregate tables are Replicated and bring their own
-- parts along. The aggregates of one hour are then spread over shards, which is correct because
-- every query sums them (the Distributed read merges partial sums from every shard).
--
-- Deduplication: a replayed batch carries the same insert_deduplication_token. The Distributed
-- table splits it by shard deterministically, so each shard receives the same rows under the same
-- token again, and its Replicated table (and each view's target, with
-- deduplicate_blocks_in_dependent_materialized_views) finds the token in Keeper and drops it, on
-- whichever replica it arrives. replicated_deduplication_window matches the single-node
-- non_replicated_deduplication_window; the time window is raised from the default (an hour) to a
-- week, so that a replicator stopped mid-batch for longer still replays exactly once.

CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER '{cluster}'
;
CREATE TABLE IF NOT EXISTS {db}.alert_changes_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedVersionedCollapsingMergeTree(
    '/clickhouse/tables/{cluster}/{db}/alert_changes_local/{shard}', '{replica}', sign, version)
ORDER BY alert_pk
SETTINGS replicated_deduplication_window = 10000,
    replicated_deduplication_window_seconds = 604800
;
CREATE TABLE IF NOT EXISTS {db}.alert_changes ON CLUSTER '{cluster}'
AS {db}.alert_changes_local
ENGINE = Distributed('{cluster}', {db}, alert_changes_local, alert_pk)
;
CREATE TABLE IF NOT EXISTS {db}.stats_hourly_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedSummingMergeTree(
    '/clickhouse/tables/{cluster}/{db}/stats_hourly_local/{shard}', '{replica}')
ORDER BY (hour, severity, status, region, violation_type)
SETTINGS replicated_deduplication_window = 10000,
    replicated_deduplication_window_seconds = 604800
;
-- Read-only: filled on each shard by its view, so it needs no sharding key.
CREATE TABLE IF NOT EXISTS {db}.stats_hourly ON CLUSTER '{cluster}'
AS {db}.stats_hourly_local
ENGINE = Distributed('{cluster}', {db}, stats_hourly_local)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.stats_hourly_mv ON CLUSTER '{cluster}'
TO {db}.stats_hourly_local AS
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
FROM {db}.alert_changes_local
GROUP BY hour, severity, status, region, violation_type
;
CREATE TABLE IF NOT EXISTS {db}.company_hourly_local ON CLUSTER '{cluster}'
(
    company_key        String,
    hour               DateTime('UTC'),
    severity           LowCardinality(String),
    status             LowCardinality(String),
    region             LowCardinality(String),
    alerts             Int64,
    amount             Decimal(38, 2)
)
ENGINE = ReplicatedSummingMergeTree(
    '/clickhouse/tables/{cluster}/{db}/company_hourly_local/{shard}', '{replica}')
ORDER BY (company_key, hour, severity, status, region)
SETTINGS replicated_deduplication_window = 10000,
    replicated_deduplication_window_seconds = 604800
;
CREATE TABLE IF NOT EXISTS {db}.company_hourly ON CLUSTER '{cluster}'
AS {db}.company_hourly_local
ENGINE = Distributed('{cluster}', {db}, company_hourly_local)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.company_hourly_mv ON CLUSTER '{cluster}'
TO {db}.company_hourly_local AS
SELECT
    company_key,
    toStartOfHour(detected_at) AS hour,
    severity,
    status,
    region,
    sum(sign) AS alerts,
    sum(sign * amount) AS amount
FROM {db}.alert_changes_local
GROUP BY company_key, hour, severity, status, region
;
-- Per UTC day, severity and status, for statistics and trends over whole UTC days.
CREATE TABLE IF NOT EXISTS {db}.stats_daily_local ON CLUSTER '{cluster}'
(
    day                Date,
    severity           LowCardinality(String),
    status             LowCardinality(String),
    alerts             Int64,
    amount             Decimal(38, 2),
    resolved           Int64,
    resolution_seconds Int64
)
ENGINE = ReplicatedSummingMergeTree(
    '/clickhouse/tables/{cluster}/{db}/stats_daily_local/{shard}', '{replica}')
ORDER BY (day, severity, status)
SETTINGS replicated_deduplication_window = 10000,
    replicated_deduplication_window_seconds = 604800
;
CREATE TABLE IF NOT EXISTS {db}.stats_daily ON CLUSTER '{cluster}'
AS {db}.stats_daily_local
ENGINE = Distributed('{cluster}', {db}, stats_daily_local)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.stats_daily_mv ON CLUSTER '{cluster}'
TO {db}.stats_daily_local AS
SELECT
    toDate(detected_at, 'UTC') AS day,
    severity,
    status,
    sum(sign) AS alerts,
    sum(sign * amount) AS amount,
    sum(sign * (resolved_at IS NOT NULL)) AS resolved,
    sum(sign * resolution_seconds) AS resolution_seconds
FROM {db}.alert_changes_local
GROUP BY day, severity, status
;
-- Per company and UTC day, for the ranking over whole UTC days (the default window).
CREATE TABLE IF NOT EXISTS {db}.company_daily_local ON CLUSTER '{cluster}'
(
    day                Date,
    company_key        String,
    severity           LowCardinality(String),
    alerts             Int64,
    amount             Decimal(38, 2)
)
ENGINE = ReplicatedSummingMergeTree(
    '/clickhouse/tables/{cluster}/{db}/company_daily_local/{shard}', '{replica}')
ORDER BY (day, company_key, severity)
SETTINGS replicated_deduplication_window = 10000,
    replicated_deduplication_window_seconds = 604800
;
CREATE TABLE IF NOT EXISTS {db}.company_daily ON CLUSTER '{cluster}'
AS {db}.company_daily_local
ENGINE = Distributed('{cluster}', {db}, company_daily_local)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.company_daily_mv ON CLUSTER '{cluster}'
TO {db}.company_daily_local AS
SELECT
    toDate(detected_at, 'UTC') AS day,
    company_key,
    severity,
    sum(sign) AS alerts,
    sum(sign * amount) AS amount
FROM {db}.alert_changes_local
GROUP BY day, company_key, severity
;
-- How often each spelling of a company is used, so that the most frequent one is shown.
CREATE TABLE IF NOT EXISTS {db}.company_names_local ON CLUSTER '{cluster}'
(
    company_key        String,
    company_name       String,
    alerts             Int64
)
ENGINE = ReplicatedSummingMergeTree(
    '/clickhouse/tables/{cluster}/{db}/company_names_local/{shard}', '{replica}')
ORDER BY (company_key, company_name)
SETTINGS replicated_deduplication_window = 10000,
    replicated_deduplication_window_seconds = 604800
;
CREATE TABLE IF NOT EXISTS {db}.company_names ON CLUSTER '{cluster}'
AS {db}.company_names_local
ENGINE = Distributed('{cluster}', {db}, company_names_local)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.company_names_mv ON CLUSTER '{cluster}'
TO {db}.company_names_local AS
SELECT company_key, company_name, sum(sign) AS alerts
FROM {db}.alert_changes_local
GROUP BY company_key, company_name
;
-- One row per applied replication batch: what it covered and when it landed. Sharded by its
-- token, so a replayed batch's row goes to the shard that already holds it and is dropped there;
-- `FINAL` over the Distributed table then collapses within each shard, which is all it needs.
CREATE TABLE IF NOT EXISTS {db}.replication_batches_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree(
    '/clickhouse/tables/{cluster}/{db}/replication_batches_local/{shard}', '{replica}')
ORDER BY token
SETTINGS replicated_deduplication_window = 10000,
    replicated_deduplication_window_seconds = 604800
;
CREATE TABLE IF NOT EXISTS {db}.replication_batches ON CLUSTER '{cluster}'
AS {db}.replication_batches_local
ENGINE = Distributed('{cluster}', {db}, replication_batches_local, cityHash64(token))
