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

// AuditEvent is one entry of the append-only audit log.
type AuditEvent struct {
	ID          int64
	At          time.Time
	ActorID     string
	Action      string
	SubjectType string
	SubjectID   string
	Details     map[string]any
}
