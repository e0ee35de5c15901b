package costest

import "time"

// Limits COS applies, in one place so a rule is written once.
const (
	maxObjectSize    = 5 << 30 // single PUT, POST, copy and append: 5 GB (GiB, as the SDK checks)
	maxPartSize      = 5 << 30
	minPartSize      = 1 << 20 // every part but the last, checked at Complete
	maxPartNumber    = 10000
	maxKeyLength     = 850
	maxListEntries   = 1000 // max-keys, max-uploads and max-parts: default and cap
	maxDeleteObjects = 1000
	maxXMLBodySize   = 4 << 20 // Complete with 10000 parts fits comfortably
	// maxServiceBuckets is GET Service's max-keys default and cap: the API
	// page (GET Service) gives 2000 for both.
	maxServiceBuckets = 2000
)

// maxClockSkew is how far in the future a signature's start time may lie
// before COS answers RequestTimeTooSkewed.
const maxClockSkew = 900 * time.Second
