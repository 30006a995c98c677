-- +goose Up
-- What the dashboard and the flow map read of each conversation, kept in
-- the row the processing path already writes (no statement more per
-- message):
--   nodes_visited: the nodes it entered, each once, in the order first
--     entered (the flow map's funnel: reached a node, and left it unless it
--     is still, or ended, there). Existing rows start with their node.
--   handoff_at: when the flow last handed it to a person.
--   handoff_answered_at: when a person first took it or replied after
--     that (earlier than handoff_at: this hand-off is not answered yet).
--     Written by staff actions only, never by the processing path's save.
ALTER TABLE conversations
    ADD COLUMN nodes_visited       jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN handoff_at          timestamptz,
    ADD COLUMN handoff_answered_at timestamptz;
UPDATE conversations SET nodes_visited = jsonb_build_array(node) WHERE node <> '';
-- A conversation waiting for a person now was handed off when it last
-- changed (what the hand-off queue shows as its time), and answered when
-- someone took it.
UPDATE conversations SET handoff_at = updated_at, handoff_answered_at = assigned_at WHERE status = 'handoff';

-- The dashboard counts conversations by when they started, ended and were
-- handed off; conversations are far fewer than messages and written once
-- a turn, so three small indexes cost the processing path little.
CREATE INDEX conversations_started_idx ON conversations (started_at, flow_id);
CREATE INDEX conversations_ended_idx ON conversations (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX conversations_handoff_at_idx ON conversations (handoff_at) WHERE handoff_at IS NOT NULL;

-- +goose Down
DROP INDEX conversations_handoff_at_idx;
DROP INDEX conversations_ended_idx;
DROP INDEX conversations_started_idx;
ALTER TABLE conversations DROP COLUMN nodes_visited, DROP COLUMN handoff_at, DROP COLUMN handoff_answered_at;
