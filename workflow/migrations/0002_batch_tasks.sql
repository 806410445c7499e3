-- Batch tasks (POST /api/alerts/batch_process/): the request, where its run stands, and what it
-- did. The source of truth for a task's state, whatever the broker delivers: each chunk's
-- changes and the advance of chunks_done commit in one transaction, so a re-run resumes after
-- the last committed chunk and never applies a change twice.
CREATE TABLE batch_tasks (
    task_id          text PRIMARY KEY,
    -- A client's key for "the same request again": the same key answers with the same task.
    idempotency_key  text UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    request_hash     text NOT NULL,
    -- action, assignee, note, actor and the distinct alert ids in the order given.
    request          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'done', 'failed')),
    total            integer NOT NULL CHECK (total >= 0),
    chunk_size       integer NOT NULL CHECK (chunk_size > 0),
    chunks_done      integer NOT NULL DEFAULT 0,
    processed        integer NOT NULL DEFAULT 0,
    counts           jsonb NOT NULL,
    -- The first alerts that did not change, with why; the counts are exact beyond this list.
    outcomes         jsonb NOT NULL DEFAULT '[]',
    error            text,
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Workers look for tasks left unfinished by a process that died.
CREATE INDEX batch_tasks_unfinished ON batch_tasks (created_at)
    WHERE state IN ('queued', 'running');
