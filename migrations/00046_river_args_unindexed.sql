-- +goose NO TRANSACTION
-- +goose Up
-- River indexes every key and value of every job's args with GIN, for
-- filtering jobs by args in its UI, which Parley does not run. Each job
-- pays for it three times (inserted, running, finished: each a new row
-- version, none of them HOT while args are indexed), and a send batch's
-- args grow as replies join it, each join rewriting every entry. Parley's
-- only query by args (a conversation's pending timers) gets a small index
-- of its own. River's reindexer is told the index is gone
-- (pipeline.reindexed).
--
-- A concurrent build that fails leaves an invalid index behind, and goose
-- does not record the version: each build drops what a failed run left
-- before it starts, so a rerun builds the index rather than skipping it.
DROP INDEX CONCURRENTLY IF EXISTS river_job_conversation_wait_idx;
CREATE INDEX CONCURRENTLY river_job_conversation_wait_idx ON river_job (((args->>'conversation_id')::bigint))
    WHERE kind = 'conversation_wait';
DROP INDEX CONCURRENTLY IF EXISTS river_job_args_index;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS river_job_args_index;
CREATE INDEX CONCURRENTLY river_job_args_index ON river_job USING GIN (args);
DROP INDEX CONCURRENTLY IF EXISTS river_job_conversation_wait_idx;
