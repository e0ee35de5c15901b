package cos

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestDebugLogsNameRequestsButNoSecrets: at debug level every COS request
// is one log line (operation, key, status, duration, request id); no
// line, nor any error, carries a secret key, session token or signature.
func TestDebugLogsNameRequestsButNoSecrets(t *testing.T) {
	const secretKey, token = "very-secret-key-value", "very-secret-session-token"
	srv := testenv.StartEmulator(t, costest.Options{Credentials: []costest.Credential{
		{SecretID: "AKIDlogtest", SecretKey: secretKey, SessionToken: token, Expiry: time.Now().Add(time.Hour)},
	}})
	var out bytes.Buffer
	logger := logrus.StandardLogger()
	oldOut, oldLevel := logger.Out, logger.GetLevel()
	logger.SetOutput(&out)
	logger.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() { logger.SetOutput(oldOut); logger.SetLevel(oldLevel) })

	ctx := context.Background()
	d := newTestDriver(t, srv, func(p *Parameters) {
		p.SecretID, p.SecretKey, p.SessionToken = "AKIDlogtest", secretKey, token
		p.ChunkSize = MinChunkSize
	})
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	w, err := d.Writer(ctx, "/logged/data", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(MinChunkSize+1, 102))
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	_, err = d.GetContent(ctx, "/logged/data")
	note(err)
	_, err = d.GetContent(ctx, "/logged/missing")
	note(err)
	r, _ := http.NewRequest(http.MethodGet, "http://registry/", nil)
	_, err = d.RedirectURL(r, "/logged/data")
	note(err)
	note(d.Delete(ctx, "/logged"))
	p := serverParameters(srv)
	p.SecretID, p.SecretKey, p.SessionToken = "AKIDlogtest", "wrong-"+secretKey, token
	_, err = New(ctx, p)
	require.Error(t, err)
	note(err)

	logs := out.String()
	require.Contains(t, logs, `op=UploadPart`)
	require.Contains(t, logs, `key=logged/data`)
	require.Contains(t, logs, `requestid=`)
	require.Contains(t, logs, `status=404`)
	everything := logs + strings.Join(errs, "\n")
	for _, secret := range []string{secretKey, token, "q-signature", "q-sign-algorithm", "x-cos-security-token"} {
		require.NotContains(t, everything, secret, "secret material in logs or errors")
	}
}
