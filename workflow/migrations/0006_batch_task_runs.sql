-- How many times a worker began running each batch task (a delivery that took the task's lock
-- while it was unfinished). A delivery that finds the task finished, or waits for another run to
-- finish it, is not a run; retries inside one run count in attempts, not here. A task whose runs
-- keep ending without finishing it (its worker dies mid-run every time) is failed once it has
-- had MSD_BATCH_MAX_RUNS runs, instead of being delivered again forever.
ALTER TABLE batch_tasks ADD COLUMN runs integer NOT NULL DEFAULT 0;
