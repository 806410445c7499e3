-- Alerts, their change events (the audit trail and the replication source) and the
-- replicator's progress. Applied once, in one transaction, by workflow.migrations.

-- One company, however it is spelled: case folded, dots and apostrophes dropped, every other run
-- of punctuation or space made one space. 'ACME BANK, N.A.' and 'Acme Bank N.A.' both give
-- 'acme bank na'.
CREATE FUNCTION msd_company_key(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
RETURN btrim(regexp_replace(
    regexp_replace(lower(name), '[.''’`]', '', 'g'),
    '[^[:alnum:]]+', ' ', 'g'));

CREATE TABLE alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        text NOT NULL UNIQUE
                    CHECK (length(alert_id) BETWEEN 1 AND 128),
    company_name    text NOT NULL CHECK (length(company_name) BETWEEN 1 AND 300),
    company_key     text GENERATED ALWAYS AS (msd_company_key(company_name)) STORED,
    violation_type  text NOT NULL CHECK (length(violation_type) BETWEEN 1 AND 300),
    severity        text NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    status          text NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'REVIEWING', 'RESOLVED', 'DISMISSED')),
    amount          numeric(15, 2) CHECK (amount >= 0),
    region          text NOT NULL DEFAULT '' CHECK (length(region) <= 100),
    detected_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    assignee        text CHECK (length(assignee) <= 200),
    -- The status the source file last gave, so that re-loading an unchanged file never
    -- overrides what supervisors decided since (NULL for alerts not loaded from a file).
    source_status   text,
    version         integer NOT NULL DEFAULT 1,
    CHECK (resolved_at IS NULL OR resolved_at >= detected_at)
);

-- The list endpoint filters by any of these and shows newest first; (detected_at, id) is the
-- keyset the cursor pages on.
CREATE INDEX alerts_newest ON alerts (detected_at DESC, id DESC);
CREATE INDEX alerts_severity_newest ON alerts (severity, detected_at DESC, id DESC);
CREATE INDEX alerts_status_newest ON alerts (status, detected_at DESC, id DESC);
CREATE INDEX alerts_region_newest ON alerts (region, detected_at DESC, id DESC);
CREATE INDEX alerts_company_newest ON alerts (company_key, detected_at DESC, id DESC);

CREATE TABLE alert_events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id. The replicator orders and bounds by it, never by event_id
    -- alone: ids are taken when a transaction writes, not when it commits.
    tx_id       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    alert_pk    bigint NOT NULL,
    alert_id    text NOT NULL,
    op          char(1) NOT NULL CHECK (op IN ('I', 'U', 'D')),
    before      jsonb,
    after       jsonb,
    actor       text NOT NULL,
    source      text NOT NULL,
    note        text,
    occurred_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX alert_events_replication ON alert_events (tx_id, event_id);
CREATE INDEX alert_events_history ON alert_events (alert_id, event_id);

CREATE TABLE replication_state (
    target          text PRIMARY KEY,
    -- Every event of a transaction visible in base_snapshot is in ClickHouse. A round moves the
    -- base to a newer target_snapshot: the events visible in the target but not in the base are
    -- applied in (tx_id, event_id) order, in batches; those up to (applied_tx, applied_event)
    -- already are. A planned batch ends at (pending_tx, pending_event) and is replayed with the
    -- same deduplication token after a crash.
    base_snapshot   pg_snapshot NOT NULL DEFAULT '1:1:',
    target_snapshot pg_snapshot,
    applied_tx      xid8 NOT NULL DEFAULT '0',
    applied_event   bigint NOT NULL DEFAULT 0,
    pending_tx      xid8,
    pending_event   bigint,
    events_applied  bigint NOT NULL DEFAULT 0,
    batches_applied bigint NOT NULL DEFAULT 0,
    -- Grows each time ClickHouse is rebuilt from the events, so that no watermark repeats.
    epoch           integer NOT NULL DEFAULT 0,
    last_event_id   bigint NOT NULL DEFAULT 0,
    last_change_at  timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Stamps each real change with a new version and time, and skips updates that change nothing,
-- so that re-running an ingest of the same file writes no event.
CREATE FUNCTION msd_alerts_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.alert_id, NEW.company_name, NEW.violation_type, NEW.severity, NEW.status,
        NEW.amount, NEW.region, NEW.detected_at, NEW.resolved_at, NEW.assignee,
        NEW.source_status)
       IS NOT DISTINCT FROM
       (OLD.alert_id, OLD.company_name, OLD.violation_type, OLD.severity, OLD.status,
        OLD.amount, OLD.region, OLD.detected_at, OLD.resolved_at, OLD.assignee,
        OLD.source_status)
    THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'RESOLVED' AND OLD.status <> 'RESOLVED' AND NEW.resolved_at IS NULL THEN
        NEW.resolved_at := now();
    ELSIF NEW.status NOT IN ('RESOLVED') AND OLD.status = 'RESOLVED'
          AND NEW.resolved_at IS NOT DISTINCT FROM OLD.resolved_at THEN
        NEW.resolved_at := NULL;
    END IF;
    NEW.id := OLD.id;
    NEW.created_at := OLD.created_at;
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER alerts_before_update BEFORE UPDATE ON alerts
FOR EACH ROW EXECUTE FUNCTION msd_alerts_before_update();

-- Writes the change events in the same transaction as the change, one set-wise INSERT per
-- statement (a bulk load of 50,000 rows costs about half of what a per-row trigger did). Who and
-- why come from the transaction-local settings msd.actor, msd.source and msd.note, which
-- workflow.db sets.
CREATE FUNCTION msd_alerts_record_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    actor  text := coalesce(nullif(current_setting('msd.actor', true), ''), session_user);
    source text := coalesce(nullif(current_setting('msd.source', true), ''), 'sql');
    note   text := nullif(current_setting('msd.note', true), '');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO alert_events (alert_pk, alert_id, op, before, after, actor, source, note)
        SELECT n.id, n.alert_id, 'I', NULL, to_jsonb(n), actor, source, note
        FROM new_rows n ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO alert_events (alert_pk, alert_id, op, before, after, actor, source, note)
        SELECT n.id, n.alert_id, 'U', to_jsonb(o), to_jsonb(n), actor, source, note
        FROM new_rows n JOIN old_rows o USING (id) ORDER BY n.id;
    ELSE
        INSERT INTO alert_events (alert_pk, alert_id, op, before, after, actor, source, note)
        SELECT o.id, o.alert_id, 'D', to_jsonb(o), NULL, actor, source, note
        FROM old_rows o ORDER BY o.id;
    END IF;
    IF FOUND THEN
        PERFORM pg_notify('msd_alert_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_events_on_insert AFTER INSERT ON alerts
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION msd_alerts_record_events();

CREATE TRIGGER alerts_events_on_update AFTER UPDATE ON alerts
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION msd_alerts_record_events();

CREATE TRIGGER alerts_events_on_delete AFTER DELETE ON alerts
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION msd_alerts_record_events();
