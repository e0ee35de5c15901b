package cos

import (
	"context"

	"github.com/sirupsen/logrus"
)

// backgroundWork runs the parts of a driver's Deletes that outlive the
// call (deleteUpload's settleUpload), at most maxBackground at once, and
// lets a caller wait for them: a test that looks at the bucket after a
// push, a command that exits when its work is done.
type backgroundWork struct {
	// slots holds one token per part running. A part that finds it full
	// runs before its Delete returns, so the goroutines and connections a
	// driver keeps for its background stay bounded.
	slots chan struct{}
}

func newBackgroundWork() *backgroundWork {
	return &backgroundWork{slots: make(chan struct{}, maxBackground)}
}

// start runs f in a goroutine, with ctx's values but not its
// cancellation, bounded in time, or runs it at once when maxBackground are
// running. Its errors are logged: what it leaves is the upload purger's.
func (b *backgroundWork) start(ctx context.Context, what string, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*maxSettle)
	run := func() {
		defer cancel()
		if err := f(ctx); err != nil {
			logrus.WithField("driver", DriverName).Warnf("%s: %v (the upload purger removes what is left)", what, rootCause(err))
		}
	}
	select {
	case b.slots <- struct{}{}:
		go func() {
			defer func() { <-b.slots }()
			run()
		}()
	default:
		run()
	}
}

// wait returns once every part started before it has ended, or with
// ctx's error. It takes every token: then no part is running. Parts
// started meanwhile find no token and run before their Delete returns,
// so they are done too when wait returns.
func (b *backgroundWork) wait(ctx context.Context) error {
	taken := 0
	defer func() {
		for range taken {
			<-b.slots
		}
	}()
	for taken < cap(b.slots) {
		select {
		case b.slots <- struct{}{}:
			taken++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Wait waits for the work the driver's Deletes left running in the
// background to end (Delete of an upload directory confirms it off the
// push's path, see Delete), or for ctx to be done; each such part ends
// within 40 seconds. A program that exits right after its Deletes, and a
// test that inspects the bucket, call it first.
func (d *Driver) Wait(ctx context.Context) error {
	return d.Base.StorageDriver.(*driver).background.wait(ctx)
}
