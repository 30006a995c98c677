package auth

import "github.com/parley-chat/parley/models"

// Permission is one thing staff may be allowed to do.
type Permission string

// Permissions. Reads of decrypted data are audited whoever reads them.
const (
	ReadConversations Permission = "conversations.read"      // search, open a conversation or contact
	RevealPhone       Permission = "contacts.reveal_phone"   // see a masked number in full (audited)
	Reply             Permission = "conversations.reply"     // write to a contact in a hand-off one holds
	ReplyAnywhere     Permission = "conversations.reply_any" // write to any contact, mid-flow or held by another
	Resend            Permission = "messages.resend"         // send a failed or uncertain message again
	HandoffWork       Permission = "conversations.handoff"   // take, release and resume handed-off conversations
	TakeOver          Permission = "conversations.take_over" // take a hand-off another member holds
	Override          Permission = "conversations.override"
	ReadFlows         Permission = "flows.read"
	SimulateFlows     Permission = "flows.simulate"
	ReadAudit         Permission = "audit.read"
	ReadDashboard     Permission = "dashboard.read" // counts only: no personal data, no per-read audit
	ManageStaff       Permission = "staff.manage"
	ManageKeys        Permission = "keys.manage"
	EraseContacts     Permission = "contacts.erase"
	ExportContacts    Permission = "contacts.export"
	ReadTemplates     Permission = "templates.read"    // the WhatsApp template registry and its statuses
	Broadcast         Permission = "broadcasts.manage" // plan, confirm, pause, resume and cancel broadcasts
	WriteNotes        Permission = "notes.write"       // write notes on contacts, edit and delete one's own
	ModerateNotes     Permission = "notes.moderate"    // edit and delete anyone's note
	TagConversations  Permission = "conversations.tag"
	ManageReplies     Permission = "saved_replies.manage" // create, edit and delete saved replies
)

// permissions is the one table of who may do what (DESIGN.md, Access):
// viewer reads (numbers masked until an audited reveal); agent works
// the hand-offs it holds; supervisor also replies anywhere, takes over
// hand-offs others hold, overrides any and reads the audit log; admin
// does everything.
var permissions = map[models.Role][]Permission{
	models.RoleViewer: {ReadConversations, RevealPhone, ReadFlows},
	models.RoleAgent: {ReadConversations, RevealPhone, ReadFlows, Reply, Resend, HandoffWork, SimulateFlows,
		WriteNotes, TagConversations},
	models.RoleSupervisor: {ReadConversations, RevealPhone, ReadFlows, Reply, ReplyAnywhere, Resend, HandoffWork, TakeOver, SimulateFlows,
		Override, ReadAudit, ReadDashboard, ReadTemplates, Broadcast, WriteNotes, ModerateNotes, TagConversations, ManageReplies},
	models.RoleAdmin: {ReadConversations, RevealPhone, ReadFlows, Reply, ReplyAnywhere, Resend, HandoffWork, TakeOver, SimulateFlows, Override, ReadAudit,
		ReadDashboard, ManageStaff, ManageKeys, EraseContacts, ExportContacts, ReadTemplates, Broadcast, WriteNotes, ModerateNotes, TagConversations, ManageReplies},
}

// Can reports whether role may do p.
func Can(role models.Role, p Permission) bool {
	for _, q := range permissions[role] {
		if q == p {
			return true
		}
	}
	return false
}

// MasksPhones reports whether role sees phone numbers masked until it
// reveals one.
func MasksPhones(role models.Role) bool { return role == models.RoleViewer }

// All lists every permission, in a stable order.
func All() []Permission {
	return []Permission{ReadConversations, RevealPhone, Reply, ReplyAnywhere, Resend, HandoffWork, TakeOver, Override, ReadFlows, SimulateFlows,
		ReadAudit, ReadDashboard, ManageStaff, ManageKeys, EraseContacts, ExportContacts, ReadTemplates, Broadcast, WriteNotes, ModerateNotes,
		TagConversations, ManageReplies}
}
