package server

type pdMetrics struct{}

func newPDMetrics(*PD) *pdMetrics { return &pdMetrics{} }
