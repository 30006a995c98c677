// Package models holds Parley's domain types and error codes. It knows
// nothing of HTTP, the database or any other package of Parley.
package models

import (
	"errors"
	"fmt"
)

// Error codes shared by every layer. Handlers map them to statuses in one
// place; stores and services return them.
const (
	ECONFLICT       = "conflict"        // the action conflicts with existing state
	EINTERNAL       = "internal"        // an internal failure; details are logged, never shown
	EINVALID        = "invalid"         // the input is malformed or fails validation
	ENOTFOUND       = "not_found"       // the entity does not exist
	EUNAUTHORIZED   = "unauthorized"    // the caller is not authenticated
	EFORBIDDEN      = "forbidden"       // the caller may not do this
	EUNAVAILABLE    = "unavailable"     // a dependency (database, provider) is down; try again
	ENOTIMPLEMENTED = "not_implemented" // the feature is not available in this configuration
)

// Error is an application error with a code and a message that is safe to
// show to the caller. It never carries personal data.
type Error struct {
	Code    string
	Message string
	// Err is the underlying cause, kept for logs and errors.Is; it is never
	// shown to a caller.
	Err error
}

// Error implements the error interface: the message, then the cause. It
// names no program (whoever prints it does: the CLI's "parley: …") and no
// code (ErrorCode reads it).
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message whose cause is err.
func Wrap(err error, code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err: the message of an
// *Error, or a generic text for internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "Internal error."
}
