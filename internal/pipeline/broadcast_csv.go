package pipeline

import (
	"encoding/csv"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/models"
)

// Bounds of an uploaded audience.
const (
	// MaxAudienceCSVBytes is the largest CSV a broadcast takes.
	MaxAudienceCSVBytes = 10 << 20
	// MaxAudienceRows is the most recipients a CSV may list.
	MaxAudienceRows = 100000
	// maxBadLines is how many bad lines a plan lists by number (all are
	// counted).
	maxBadLines = 100
)

// csvAudience is an uploaded audience: a row a line, the number
// normalised (E.164; "" when it is not a number), the other columns as
// variables by their header's name.
type csvAudience struct {
	rows []csvRow
	bad  []models.BadLine
}

type csvRow struct {
	line   int
	number string
	vars   map[string]string
}

// readAudienceCSV reads a CSV of numbers and variables, at most
// MaxAudienceCSVBytes and MaxAudienceRows: a header naming the number's
// column ("phone", "number" or "phone_number") and each variable's, then
// a recipient a line. Numbers are normalised in the deployment's region;
// a line that is not a number is kept (excluded as invalid, by its line
// number) and never repeated in an error.
func readAudienceCSV(body io.Reader, phones phone.Normalizer) (*csvAudience, error) {
	limited := &io.LimitedReader{R: body, N: MaxAudienceCSVBytes + 1}
	r := csv.NewReader(limited)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	header, err := r.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, models.Errorf(models.EINVALID, "The CSV is empty: it needs a header line and a line a recipient.")
	case err != nil:
		return nil, csvError(err, limited)
	}
	names := make([]string, len(header))
	numberCol := -1
	for i, h := range header {
		names[i] = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch names[i] {
		case "phone", "number", "phone_number", "mobile":
			if numberCol < 0 {
				numberCol = i
			}
		}
	}
	if numberCol < 0 {
		return nil, models.Errorf(models.EINVALID, "The CSV's header needs a column named phone (or number) for the numbers.")
	}
	out := &csvAudience{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err, limited)
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(out.rows) == MaxAudienceRows {
			return nil, models.Errorf(models.EINVALID, "The CSV lists more than %d recipients; split it.", MaxAudienceRows)
		}
		row := csvRow{line: line}
		if numberCol < len(rec) {
			row.number = strings.TrimSpace(rec[numberCol]) // normalised below
		}
		for i, v := range rec {
			if i != numberCol && i < len(names) && names[i] != "" && strings.TrimSpace(v) != "" {
				if row.vars == nil {
					row.vars = map[string]string{}
				}
				row.vars[names[i]] = strings.TrimSpace(v)
			}
		}
		out.rows = append(out.rows, row)
	}
	if len(out.rows) == 0 {
		return nil, models.Errorf(models.EINVALID, "The CSV lists no recipients.")
	}
	normalise(out.rows, phones)
	for _, row := range out.rows {
		if row.number == "" && len(out.bad) < maxBadLines {
			out.bad = append(out.bad, models.BadLine{Line: row.line, Reason: "not a phone number"})
		}
	}
	return out, nil
}

// normalise puts each row's number in E.164 ("" when it is not one), on
// every core: parsing a number is most of reading a large CSV.
func normalise(rows []csvRow, phones phone.Normalizer) {
	workers := runtime.GOMAXPROCS(0)
	per := (len(rows) + workers - 1) / workers
	var wg sync.WaitGroup
	for start := 0; start < len(rows); start += per {
		part := rows[start:min(start+per, len(rows))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range part {
				n, err := phones.Normalize(part[i].number)
				if err != nil {
					n = ""
				}
				part[i].number = n
			}
		}()
	}
	wg.Wait()
}

// csvError says what is wrong with a CSV, by line, without its content.
func csvError(err error, limited *io.LimitedReader) error {
	if limited.N <= 0 {
		return models.Errorf(models.EINVALID, "The CSV is larger than %d MB; split it.", MaxAudienceCSVBytes>>20)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return models.Errorf(models.EINVALID, "The CSV cannot be read at line %d: %s.", pe.Line, pe.Err)
	}
	return models.Wrap(err, models.EINVALID, "The CSV cannot be read.")
}
