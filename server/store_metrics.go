package server

import (
	"time"

	"github.com/multiraft/multiraft/core/pb"
)

type storeMetrics struct{}

func newStoreMetrics(*Store) *storeMetrics                { return &storeMetrics{} }
func (m *storeMetrics) flushed(time.Duration)             {}
func (m *storeMetrics) received(*pb.Envelope)             {}
func (m *storeMetrics) dropped(string)                    {}
func (m *storeMetrics) refused(string)                    {}
func (m *storeMetrics) pdError()                          {}
func (m *storeMetrics) sent(string, int)                  {}
func (m *storeMetrics) sendFailed(string, int)            {}
func (m *storeMetrics) snapshotBytesIn(*pb.SnapshotChunk) {}
