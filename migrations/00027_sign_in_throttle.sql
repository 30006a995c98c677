-- +goose Up
-- Failed sign-ins by key (an address, an account, an account from an
-- address), shared by every instance so that several do not multiply an
-- attacker's allowance. Keys are blind indexes: no email or address is
-- stored. UNLOGGED: the counts are worth no WAL, and a crash that empties
-- the table only forgets 15 minutes of failures.
--
-- in_flight counts the attempts begun and not yet ended (counted when they
-- begin, so that parallel guesses see each other); began_at is the latest
-- one's start, after which a minute without an end stops them counting.
CREATE UNLOGGED TABLE sign_in_throttle (
    key       bytea       PRIMARY KEY,
    failures  integer     NOT NULL,
    last_at   timestamptz NOT NULL,
    in_flight integer     NOT NULL DEFAULT 0,
    began_at  timestamptz NOT NULL
);
CREATE INDEX sign_in_throttle_last_idx ON sign_in_throttle (last_at);

-- +goose Down
DROP TABLE sign_in_throttle;
