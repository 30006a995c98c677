package store

import (
	"context"
	"fmt"
	"sync"

	"gorm.io/gorm"
)

// idBlock is the number of ids one nextval reserves; the tables' identity
// sequences step by this much (see migrations/00001_core.sql).
const idBlock = 64

// idAllocator hands out row ids before insert, because ciphertexts are bound
// to their row id. One nextval reserves a block of idBlock ids; several
// instances take separate blocks, so ids are unique but only roughly ordered
// across instances.
type idAllocator struct {
	db    *gorm.DB
	table string
	mu    sync.Mutex
	next  int64
	end   int64 // exclusive
}

func newIDAllocator(db *gorm.DB, table string) *idAllocator {
	return &idAllocator{db: db, table: table}
}

// Next returns an id no one else will get.
func (a *idAllocator) Next(ctx context.Context) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == a.end {
		var start int64
		// Outside any transaction of the caller's: a rollback there must not
		// make this process reuse ids a sequence never gives back.
		if err := a.db.WithContext(ctx).Raw("SELECT nextval(pg_get_serial_sequence(?, 'id'))", a.table).Scan(&start).Error; err != nil {
			return 0, fmt.Errorf("reserve %s ids: %w", a.table, err)
		}
		a.next, a.end = start, start+idBlock
	}
	id := a.next
	a.next++
	return id, nil
}
