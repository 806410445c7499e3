-- The outcome of each reconciliation (msd reconcile, or its schedule): whether ClickHouse's
-- figures equal PostgreSQL's day by day, what a repair wrote, and the days still differing.
-- Kept here so that any process (the API's /metrics included) can read the latest result.
CREATE TABLE reconcile_runs (
    run_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The ClickHouse database compared (MSD_CLICKHOUSE_DATABASE).
    target            text NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    -- The replication watermark the comparison was made at.
    watermark         text NOT NULL,
    repair            boolean NOT NULL,
    days_compared     integer NOT NULL,
    -- Days differing when the run began, and when it ended (after a repair, if any).
    days_found        integer NOT NULL,
    days_differing    integer NOT NULL,
    -- Sum over day x severity x status cells of |PostgreSQL - ClickHouse| alerts and amount,
    -- when the run ended.
    alerts_difference bigint NOT NULL,
    amount_difference numeric(38, 2) NOT NULL,
    repaired_alerts   integer NOT NULL DEFAULT 0,
    repair_events     integer NOT NULL DEFAULT 0,
    -- The days still differing at the end (at most 1,000), with both sides' figures.
    days              jsonb NOT NULL DEFAULT '[]'
);

CREATE INDEX reconcile_runs_latest ON reconcile_runs (target, run_id DESC);
