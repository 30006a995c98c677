package store

// SetSignInWindowRows lets a test reach the bound of emails one window
// counts apart without a thousand sign-ins; it returns the restore.
func SetSignInWindowRows(n int) func() {
	old := signInWindowRows
	signInWindowRows = n
	return func() { signInWindowRows = old }
}

// IngestMessagesSQL is the statement that stores a write's messages, for
// a test of its plan.
var IngestMessagesSQL = ingestMessagesSQL
