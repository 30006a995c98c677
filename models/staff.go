package models

import "time"

// Role is a staff member's role; permissions follow from it.
type Role string

// Staff roles, from most to least powerful.
const (
	RoleAdmin      Role = "admin"
	RoleSupervisor Role = "supervisor"
	RoleAgent      Role = "agent"
	RoleViewer     Role = "viewer"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleSupervisor, RoleAgent, RoleViewer:
		return true
	}
	return false
}

// StaffUser is a person who uses the console.
type StaffUser struct {
	ID          string // the Supabase (or local provider) user id, a UUID
	Email       string
	DisplayName string
	Role        Role
	Active      bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Actor is who does an audited action, as the audit log records them.
type Actor struct {
	ID        string // the staff member; "" for the system or the command line
	Role      Role
	RequestID string
	IP        string
}

// AuditEvent is one entry of the append-only audit log.
type AuditEvent struct {
	ID          int64
	At          time.Time
	ActorID     string // the staff member who acted; "" for the system or the command line
	ActorRole   Role   // their role at the time
	Action      string // e.g. staff.sign_in, conversation.override
	SubjectType string
	SubjectID   string
	RequestID   string // the HTTP request's id, when one carried it
	IP          string // the caller's address, when known
	Details     map[string]any
}
