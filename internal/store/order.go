package store

import "fmt"

// A conversation is read in the order it happened. Each message carries
// its place in its contact's conversation, messages.seq, taken when it is
// written (migrations/00025_message_order.sql): one number per write from
// the message_writes sequence, times writePlaces, plus the message's
// position in the write. The sequence is the database's, shared by every
// writer and instance, so a message written after another was committed
// (a reply after the message it answers) is placed after it; ids are not
// (each writer of each instance reserves them in blocks of idBlock).
//
// The Ingestor places a write's messages explicitly (inbound by the
// platform's time, then arrival); a write of rows in the order they are to
// be read (InsertReplies) leaves seq to the column's default, which takes a
// number per row as the rows are written.

// writePlaces is how many messages one write can place: the step between
// two writes' numbers.
const writePlaces = 65536

// writeNumber is a common table expression, w, holding the base of this
// write's places: its number from the sequence times writePlaces (as the
// column's default multiplies it). A volatile CTE is evaluated once,
// however many rows join it.
var writeNumber = fmt.Sprintf(`w AS (SELECT nextval('message_writes') * %d AS base)`, writePlaces)
