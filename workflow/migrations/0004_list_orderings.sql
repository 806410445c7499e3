-- The list's sort orders besides newest first, each with id as tie-breaker: the keyset a cursor
-- pages on, so that a page at any depth is an index range scan (read forwards or backwards for
-- the two directions). Each index costs every insert and update; ingest figures are in
-- docs/benchmarks.md.

-- Severity by rank, not alphabetically.
CREATE FUNCTION msd_severity_rank(severity text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
RETURN CASE severity WHEN 'LOW' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'HIGH' THEN 3
                     WHEN 'CRITICAL' THEN 4 END;

-- An alert without amount sorts as -1, below every amount (amounts are never negative).
CREATE INDEX alerts_by_amount ON alerts ((coalesce(amount, -1)), id);
CREATE INDEX alerts_by_severity ON alerts ((msd_severity_rank(severity)), id);
CREATE INDEX alerts_by_company_name ON alerts (company_name, id);
CREATE INDEX alerts_by_status ON alerts (status, id);
