package cos

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBackgroundWorkWait: wait returns only once the parts started before
// it have ended, and with ctx's error when ctx ends first; a part started
// while maxBackground run runs before start returns.
func TestBackgroundWorkWait(t *testing.T) {
	ctx := context.Background()
	b := newBackgroundWork()
	release := make(chan struct{})
	ended := make(chan struct{})
	b.start(ctx, "blocked", func(context.Context) error {
		<-release
		close(ended)
		return nil
	})

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, b.wait(cancelled), context.Canceled, "a part is still running")

	waited := make(chan error, 1)
	go func() { waited <- b.wait(ctx) }()
	close(release)
	require.NoError(t, <-waited)
	select {
	case <-ended:
	default:
		t.Fatal("wait returned before the part ended")
	}

	// Fill every slot; the next part runs in the caller.
	hold := make(chan struct{})
	for range maxBackground {
		b.start(ctx, "holding", func(context.Context) error { <-hold; return nil })
	}
	ranInline := false
	b.start(ctx, "inline", func(context.Context) error { ranInline = true; return nil })
	require.True(t, ranInline, "a part beyond maxBackground runs before start returns")
	close(hold)
	require.NoError(t, b.wait(ctx))
	require.Empty(t, b.slots, "wait gives back every token it took")
}

// TestBackgroundPartOutlivesCallersContext: a part runs on after its
// Delete's context is cancelled (the registry cancels it once the request
// is answered), bounded by a deadline of its own.
func TestBackgroundPartOutlivesCallersContext(t *testing.T) {
	b := newBackgroundWork()
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	var partErr error
	var deadline time.Time
	b.start(ctx, "outliving", func(ctx context.Context) error {
		<-release
		partErr = ctx.Err()
		deadline, _ = ctx.Deadline()
		return nil
	})
	cancel()
	close(release)
	require.NoError(t, b.wait(context.Background()))
	require.NoError(t, partErr, "the part's context is cancelled with the caller's")
	require.False(t, deadline.IsZero(), "the part has no deadline")
}
