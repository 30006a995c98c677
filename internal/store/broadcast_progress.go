package store

import (
	"context"
	"time"

	"github.com/parley-chat/parley/models"
)

// seriesPoints is how many points a broadcast's chart has at most.
const seriesPoints = 24

// Progress counts the broadcast's recipients by what became of them:
// their plan status joined to their message's status; replied counts those
// who wrote after their message (a later place in their conversation).
func (s *BroadcastStore) Progress(ctx context.Context, broadcastID int64) (*models.BroadcastProgress, error) {
	g := s.db.Gorm.WithContext(ctx)
	var c struct {
		Reached, Pending, Queued, Sent, Delivered, Read, Failed, Cancelled, Replied int
	}
	err := g.Raw(`SELECT count(*) FILTER (WHERE r.status <> 'excluded') AS reached,
			count(*) FILTER (WHERE r.status = 'pending') AS pending,
			count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
			count(*) FILTER (WHERE r.status = 'queued' AND m.status IN ('queued', 'sending')) AS queued,
			count(*) FILTER (WHERE m.status = 'sent') AS sent,
			count(*) FILTER (WHERE m.status = 'delivered') AS delivered,
			count(*) FILTER (WHERE m.status = 'read') AS read,
			count(*) FILTER (WHERE m.status = 'failed') AS failed,
			count(*) FILTER (WHERE m.id IS NOT NULL AND EXISTS (SELECT 1 FROM messages i
				WHERE i.contact_id = r.contact_id AND i.direction = 'in' AND i.seq > m.seq)) AS replied
		FROM broadcast_recipients r LEFT JOIN messages m ON m.id = r.message_id
		WHERE r.broadcast_id = ?`, broadcastID).Scan(&c).Error
	if err != nil {
		return nil, dbError(err, "Broadcast")
	}
	p := &models.BroadcastProgress{Reached: c.Reached, Pending: c.Pending, Queued: c.Queued, Sent: c.Sent, Delivered: c.Delivered,
		Read: c.Read, Failed: c.Failed, Cancelled: c.Cancelled, Replied: c.Replied, Excluded: map[string]int{}}
	var reasons []struct {
		Reason string
		N      int
	}
	if err := g.Raw(`SELECT reason, count(*) AS n FROM broadcast_recipients WHERE broadcast_id = ? AND status = 'excluded' GROUP BY reason`, broadcastID).Scan(&reasons).Error; err != nil {
		return nil, dbError(err, "Broadcast")
	}
	for _, r := range reasons {
		p.Excluded[r.Reason] = r.N
	}
	if p.Series, err = s.series(ctx, broadcastID); err != nil {
		return nil, err
	}
	return p, nil
}

// series is how many of the broadcast's messages the platform had taken
// over time, cumulative, at the ends of up to seriesPoints equal spans
// from the first to the last.
func (s *BroadcastStore) series(ctx context.Context, broadcastID int64) ([]models.BroadcastPoint, error) {
	var buckets []struct {
		K      int
		N      int
		Lo, Hi time.Time
	}
	err := s.db.Gorm.WithContext(ctx).Raw(`WITH s AS (
			SELECT m.sent_at AS t FROM broadcast_recipients r JOIN messages m ON m.id = r.message_id
			WHERE r.broadcast_id = ? AND m.sent_at IS NOT NULL),
		b AS (SELECT min(t) AS lo, greatest(max(t), min(t) + interval '1 second') AS hi FROM s)
		SELECT least(width_bucket(extract(epoch FROM s.t), extract(epoch FROM b.lo), extract(epoch FROM b.hi), ?), ?) AS k,
			count(*) AS n, min(b.lo) AS lo, min(b.hi) AS hi
		FROM s, b GROUP BY 1 ORDER BY 1`, broadcastID, seriesPoints, seriesPoints).Scan(&buckets).Error
	if err != nil || len(buckets) == 0 {
		return nil, dbError(err, "Broadcast")
	}
	lo, hi := buckets[0].Lo, buckets[0].Hi
	step := hi.Sub(lo) / seriesPoints
	points := []models.BroadcastPoint{{At: lo, Sent: 0}}
	total, next := 0, 0
	for k := 1; k <= seriesPoints; k++ {
		for next < len(buckets) && buckets[next].K <= k {
			total += buckets[next].N
			next++
		}
		points = append(points, models.BroadcastPoint{At: lo.Add(time.Duration(k) * step), Sent: total})
	}
	return points, nil
}
