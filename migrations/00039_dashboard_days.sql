-- +goose Up
-- The dashboard's counts per UTC day. A day an hour past its end no longer
-- changes (its messages and conversations' times are written once), so it
-- is counted once, the first time the dashboard shows it, and kept here:
-- a month's dashboard then counts only today's rows, whatever the volume.
-- Counts only, nothing personal; an erasure or retention purge leaves a
-- past day's counts as they were.
CREATE TABLE dashboard_days (
    day          date        PRIMARY KEY,
    messages_in  bigint      NOT NULL,
    messages_out bigint      NOT NULL,
    started      bigint      NOT NULL,
    finished     bigint      NOT NULL,
    handed_off   bigint      NOT NULL,
    counted_at   timestamptz NOT NULL DEFAULT now()
);

-- Per flow and day: conversations started (node '') and conversations
-- ended at each node, for the flows' completion.
CREATE TABLE dashboard_flow_days (
    day     date   NOT NULL,
    flow_id text   NOT NULL,
    node    text   NOT NULL,
    started bigint NOT NULL,
    ended   bigint NOT NULL,
    PRIMARY KEY (day, flow_id, node)
);

-- Counting a day reads its messages by time. Messages are written in
-- time order, so a BRIN index (a few pages, next to nothing per insert:
-- ingest pays no B-tree more) finds a day's part of the table.
CREATE INDEX messages_created_brin ON messages USING brin (created_at);

-- +goose Down
DROP INDEX messages_created_brin;
DROP TABLE dashboard_flow_days;
DROP TABLE dashboard_days;
