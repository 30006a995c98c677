package main

import (
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/desk"
	"github.com/parley-chat/parley/internal/store"
)

// newDesk is the console's and the API's notes, tags and saved replies
// over db; staff names the notes' authors.
func newDesk(db *store.DB, c store.Crypto, staff handlers.StaffLookup) *handlers.Desk {
	convs := store.NewConversationStore(db, c)
	return &handlers.Desk{Staff: staff, Convs: convs, Actions: &desk.Service{NoteStore: store.NewNoteStore(db, c), TagStore: store.NewTagStore(db),
		ReplyStore: store.NewSavedReplyStore(db), Convs: convs, Contacts: store.NewContactStore(db, c), Audit: store.NewAuditStore(db, c)}}
}
