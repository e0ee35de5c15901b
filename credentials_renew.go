package cos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Renewal timing of temporary keys. Keys of lifetime L are renewed from
// refreshMargin (at most L/2) before they expire, and used until
// expirySlack (at most L/10) before: a request signed then still reaches
// COS before the keys expire there, allowing for transit and clock skew.
const (
	refreshMargin = 5 * time.Minute
	expirySlack   = 30 * time.Second
	// renewalTimeout bounds one fetch, so a renewal never hangs.
	renewalTimeout = 30 * time.Second
	// Failed renewals are retried with exponential backoff from
	// minRenewalBackoff up to maxRenewalBackoff, with jitter.
	minRenewalBackoff = time.Second
	maxRenewalBackoff = time.Minute
)

// fetchFunc obtains fresh temporary keys and when they expire.
type fetchFunc func(ctx context.Context) (cossdk.Credential, time.Time, error)

// renewingCredentials caches temporary keys and renews them before they
// expire: once for all callers (single-flight), in the background while
// the current keys are still usable, with backoff after a failure. A
// caller waits only when no usable keys remain, and then at most for one
// fetch (renewalTimeout) or its own context; a renewal that keeps failing
// is reported as an error naming the source, never a hang.
type renewingCredentials struct {
	name  string
	fetch fetchFunc
	now   func() time.Time // time.Now; tests step a clock

	mu        sync.Mutex
	current   cossdk.Credential
	obtained  time.Time
	expiry    time.Time     // zero before the first fetch
	renewing  chan struct{} // closed when the fetch in flight ends; nil when none
	failures  int           // consecutive failed fetches
	notBefore time.Time     // no fetch before this (backoff)
	lastErr   error
}

// newRenewingCredentials fetches the first keys within ctx.
func newRenewingCredentials(ctx context.Context, name string, fetch fetchFunc) (*renewingCredentials, error) {
	r := &renewingCredentials{name: name, fetch: fetch, now: time.Now}
	if _, err := r.credential(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *renewingCredentials) describe() string { return r.name }

// refreshAt and usableUntil bound the current keys' use (see refreshMargin).
func (r *renewingCredentials) refreshAt() time.Time {
	return r.expiry.Add(-min(refreshMargin, r.expiry.Sub(r.obtained)/2))
}

func (r *renewingCredentials) usableUntil() time.Time {
	return r.expiry.Add(-min(expirySlack, r.expiry.Sub(r.obtained)/10))
}

func (r *renewingCredentials) credential(ctx context.Context) (cossdk.Credential, error) {
	for {
		r.mu.Lock()
		now := r.now()
		usable := !r.expiry.IsZero() && now.Before(r.usableUntil())
		if usable && now.Before(r.refreshAt()) {
			cred := r.current
			r.mu.Unlock()
			return cred, nil
		}
		if r.renewing == nil && !now.Before(r.notBefore) {
			r.startRenewal()
		}
		if usable {
			// Renewal is due: it runs in the background while these
			// keys still work.
			cred := r.current
			r.mu.Unlock()
			return cred, nil
		}
		wait, lastErr, retryIn := r.renewing, r.lastErr, r.notBefore.Sub(now)
		r.mu.Unlock()
		if wait == nil {
			// No usable keys, and the last fetch failed moments ago.
			if r.expiry.IsZero() {
				return cossdk.Credential{}, &credentialError{r.name, lastErr}
			}
			return cossdk.Credential{}, &credentialError{r.name, fmt.Errorf("the keys expired and renewing them failed: %w (next attempt in %s)", lastErr, retryIn.Round(time.Second))}
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return cossdk.Credential{}, &credentialError{r.name, fmt.Errorf("waiting for temporary keys: %w", ctx.Err())}
		}
	}
}

// validFor is how long the keys handed out from now on stay usable, at most
// want: a presigned URL signed with them must not promise more. Keys that
// would not last want are renewed first, waiting for that one fetch, once
// they are past half their lifetime (a fresh key then lasts longer; before,
// renewing keys shorter than want on every call would fetch on every
// call). When renewing fails or cannot help, the answer is what is left.
func (r *renewingCredentials) validFor(ctx context.Context, want time.Duration) (time.Duration, error) {
	renewed := false
	for {
		if _, err := r.credential(ctx); err != nil {
			return 0, err
		}
		r.mu.Lock()
		now := r.now()
		left := r.usableUntil().Sub(now)
		halfLife := r.obtained.Add(r.expiry.Sub(r.obtained) / 2)
		if left >= want || renewed || now.Before(halfLife) {
			r.mu.Unlock()
			return min(left, want), nil
		}
		if r.renewing == nil && !now.Before(r.notBefore) {
			r.startRenewal()
		}
		wait := r.renewing
		r.mu.Unlock()
		if wait == nil {
			return min(left, want), nil // backing off after a failure
		}
		select {
		case <-wait:
			renewed = true
		case <-ctx.Done():
			return min(left, want), nil
		}
	}
}

// startRenewal starts the one fetch; r.mu is held. The fetch has a context
// of its own, so a caller that gives up does not cancel it for the others.
func (r *renewingCredentials) startRenewal() {
	done := make(chan struct{})
	r.renewing = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), renewalTimeout)
		cred, expiry, err := r.fetch(ctx)
		cancel()
		r.mu.Lock()
		defer r.mu.Unlock()
		defer close(done)
		r.renewing = nil
		now := r.now()
		if err == nil && !expiry.After(now) {
			err = fmt.Errorf("the new keys expired at %s, before they arrived: is this machine's clock right?", expiry.UTC().Format(time.RFC3339))
		}
		if err == nil && (cred.SecretID == "" || cred.SecretKey == "") {
			err = fmt.Errorf("the answer carried no key pair")
		}
		// A source may hand back the keys it gave before (a metadata
		// service caches them): that is no renewal. The keys' margins stay
		// those of their whole lifetime (from when they were first seen),
		// and the next try waits for the backoff, instead of taking now as
		// their start, which shrank the margins toward nothing and made a
		// fetch on nearly every request near the expiry.
		same := err == nil && cred == r.current
		if same && !expiry.After(r.expiry) {
			err = fmt.Errorf("it handed back the keys it gave before, which expire at %s", expiry.UTC().Format(time.RFC3339))
		}
		if err != nil {
			defaultMetrics.credentialFailures.Inc()
			r.failures++
			backoff := min(maxRenewalBackoff, minRenewalBackoff<<min(r.failures-1, 10))
			backoff = backoff/2 + rand.N(backoff/2+1)
			r.notBefore, r.lastErr = now.Add(backoff), err
			log := logrus.WithField("driver", DriverName)
			if !r.expiry.IsZero() && now.Before(r.usableUntil()) {
				log.Warnf("renewing the credentials from %s failed (attempt %d): %v; the current keys are used until %s",
					r.name, r.failures, err, r.usableUntil().UTC().Format(time.RFC3339))
			} else if !r.expiry.IsZero() {
				log.Errorf("renewing the credentials from %s failed (attempt %d): %v; no valid keys are left", r.name, r.failures, err)
			}
			return
		}
		if !same {
			r.obtained = now
		}
		r.current, r.expiry = cred, expiry
		r.failures, r.notBefore, r.lastErr = 0, time.Time{}, nil
	}()
}

// String and Format: see staticCredentials.String.
func (r *renewingCredentials) String() string             { return r.name }
func (r *renewingCredentials) Format(f fmt.State, _ rune) { io.WriteString(f, r.name) }
